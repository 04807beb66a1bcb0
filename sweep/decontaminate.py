"""Which training samples share an n-gram (13 normalised words by default) with a test item.

    python -m sweep.decontaminate --source math=../shared/data/gsm8k/train.jsonl \
        --source general=../shared/data/sharegpt/sharegpt_v3_sample1011.json \
        [--tests gsm8k,humaneval,mtbench | --tests gsm8k=PATH,...] [--ngram 13] [--json]
It lives in sweep/ because it needs both sides: the test items exactly as the evals load them
(sweep/planning/test_items.py) and the training samples exactly as training reads them
(trainers.data.sources, streamed); the n-gram index is trainers/data/ngrams.py, so the data
pipeline can use it without importing evals.
"""

from __future__ import annotations

import argparse
import json
import sys

from sweep.planning.test_items import TESTS, load_tests
from trainers.data.ngrams import DEFAULT_N, MAX_EXAMPLES, build_index, scan
from trainers.data.records import RecordError, Rejects
from trainers.data.source_spec import make_spec, parse_named
from trainers.data.sources import iter_records


def scan_sources(sources: dict[str, str], tests: str = ",".join(TESTS), n: int = DEFAULT_N,
        strict: bool = False, max_examples: int = MAX_EXAMPLES) -> dict:
    """The report: {"tests", "ngram", "sources": {name: {read, overlapping, by_test,
    examples}}, "rejected"}. Each source is streamed past the hashed test n-grams."""
    items, info = load_tests(tests)
    index = build_index(items, n)
    for name, counts in index.stats.items():
        info[name].update(ngrams=counts["ngrams"], too_short=counts["short"])
    names = [t for t in info if "items" in info[t]]
    report = {"ngram": n, "tests": info, "sources": {}, "rejected": {}}
    for name, location in sources.items():
        rejects = Rejects()
        records = iter_records(make_spec(name, location), strict=strict, rejects=rejects)
        report["sources"][name] = scan(records, index, max_examples).to_dict(names)
        report["rejected"][name] = rejects.to_dict()
    return report


def format_report(report: dict) -> str:
    lines = [f"{report['ngram']}-gram overlap with:"]
    for test, info in report["tests"].items():
        lines.append(f"  {test}: " + (f"unavailable ({info['unavailable']})" if "unavailable"
                                       in info else f"{info['items']} items, {info['ngrams']} "
                                       f"n-grams ({info['too_short']} too short) from {info['from']}"))
    for name, src in report["sources"].items():
        by_test = ", ".join(f"{t} {c}" for t, c in src["by_test"].items())
        rejected = report["rejected"][name]["total"]
        lines.append(f"{name}: read {src['read']} (rejected {rejected}), overlapping "
                     f"{src['overlapping']} ({by_test})")
        lines += [f"  {e['sample']} ~ {e['item']} ({e['ngrams']} n-grams): \"{e['ngram']}\""
                  for e in src["examples"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweep.decontaminate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", action="append", default=[], metavar="NAME=PATH",
                        type=parse_named,
                        required=True, help="a training source, any format the trainer reads")
    parser.add_argument("--tests", default=",".join(TESTS),
                        help="test sets, each bare (what the evals use offline) or NAME=PATH")
    parser.add_argument("--ngram", type=int, default=DEFAULT_N, help="words per n-gram")
    parser.add_argument("--examples", type=int, default=MAX_EXAMPLES,
                        help="examples shown per source and test set")
    parser.add_argument("--strict", action="store_true", help="stop at the first bad record")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.ngram < 1:
        parser.error("--ngram must be at least 1")
    try:
        report = scan_sources(dict(args.source), args.tests, args.ngram, args.strict,
                     args.examples)
    except (RecordError, FileNotFoundError, UnicodeDecodeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
