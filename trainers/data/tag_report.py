"""What the keyword tagger removes from a chat corpus (general_nocm's rule, per scope):
    python -m trainers.data.tag_report ../shared/data/sharegpt/sharegpt_v3_sample1011.json
"""

from __future__ import annotations

import sys

from trainers.data.records import Rejects
from trainers.data.source_spec import SourceSpec
from trainers.data.sources import read_records
from trainers.data.tagging import SCOPES, KeywordTagger, filter_general_nocm


def main(argv: list[str]) -> None:
    rejects = Rejects()
    records = read_records(SourceSpec("general", argv[0]), rejects=rejects)
    print(f"{argv[0]}: {len(records)} records read, {rejects.total} rejected by the reader")
    for scope in SCOPES:
        print(f"scope={scope}:", filter_general_nocm(records, KeywordTagger(scope))[1].text())


if __name__ == "__main__":
    main(sys.argv[1:])
