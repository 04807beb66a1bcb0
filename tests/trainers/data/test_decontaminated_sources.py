"""A decontaminated source (SourceSpec.decontaminate): test items planted among ordinary chats are
left out and counted per test set, every other record keeps its id, and the source's identity in
stage ids differs from the raw one's. (The Ray Data scan agrees: tests/trainers/data/test_ray_selection.py.)"""

import json

import pytest
from contamination import ITEMS, planted_chats, write_items

from core.ids import fingerprint_sources, stage_id
from trainers.data.decontamination import items_identity, items_payload, items_rel
from trainers.data.source_spec import SourceSpec
from trainers.data.sources import read_records


@pytest.fixture()
def chats(tmp_path):
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in planted_chats()))
    return SourceSpec("general", str(path))


def test_planted_test_items_are_left_out_and_counted_per_test(chats, tmp_path):
    from dataclasses import replace

    from trainers.data.records import Rejects

    raw, clean = Rejects(), Rejects()
    raw_ids = [r["id"] for r in read_records(chats, rejects=raw)]
    kept = read_records(replace(chats, decontaminate=write_items(tmp_path)), rejects=clean)
    assert raw.total == 0 and len(raw_ids) == 11
    assert clean.counts == {"contaminated:gsm8k": 1, "contaminated:humaneval": 1,
                            "contaminated:gsm8k+humaneval": 1}
    assert clean.examples["contaminated:gsm8k"] == [f"{chats.location}#leak-math"]
    # The others keep their ids and their order: leaving a sample out renames nothing.
    assert [r["id"] for r in kept] == [i for i in raw_ids if not i.startswith("leak-")]


def test_a_decontaminated_source_is_another_source_in_stage_ids(chats, tmp_path):
    from dataclasses import replace

    items = write_items(tmp_path)
    clean = replace(chats, decontaminate=items)
    elsewhere = replace(chats,
                        decontaminate=f"s3://bucket/runs/{items_rel(items_payload(ITEMS, 13))}")
    shorter = replace(chats, decontaminate=write_items(tmp_path, n=8))
    recipe = (("general", 1),)

    def sid(spec):
        return stage_id("model:tiny_llama", recipe, {"epochs": 1}, 0, {"general": spec})

    assert sid(clean) != sid(chats) and sid(shorter) != sid(clean)
    assert sid(elsewhere) == sid(clean)  # named by the items' content, not by the storage
    assert fingerprint_sources({"general": clean})["general"]["decontaminate"] == \
        items_identity(items)
    # A raw spec's fingerprint is what it was before sources had contents: ids of raw stages
    # outside the sweep (tests, the data command) do not move.
    assert set(fingerprint_sources({"general": chats})["general"]) == {
        "location", "format", "hf_config", "split", "exclude_tags"}


def test_a_file_that_is_not_test_items_is_a_clear_error(chats, tmp_path):
    from dataclasses import replace

    bad = tmp_path / "decontamination" / "nothing.json"
    bad.parent.mkdir()
    bad.write_text('{"items": 3}')
    with pytest.raises(ValueError, match="nothing.json: not a test-items file"):
        read_records(replace(chats, decontaminate=str(bad)))
