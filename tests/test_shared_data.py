"""The real public files in ../shared/data: counts, exact 1/256 selection on any Ray layout, and
corrupted copies reported by reason and line. Skips with a message when the data is absent."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from trainers.data.recipe import make_recipe
from trainers.data.records import RecordError, Rejects
from trainers.data.selection import select
from trainers.data.source_spec import SourceSpec
from trainers.data.sources import read_records

pytestmark = pytest.mark.shared_data


def _read(path, fmt="auto"):
    rejects = Rejects()
    records = read_records(SourceSpec(path.parent.name, str(path), fmt), rejects=rejects)
    return records, rejects


@pytest.mark.parametrize("relative, fmt, total", [
    ("gsm8k/train.jsonl", "gsm8k", 7473),
    ("gsm8k/test.jsonl", "gsm8k", 1319),
    ("gsm8k_screl/train_use.jsonl", "rft", 7473),
    ("codealpaca/code_alpaca_2k.json", "code_alpaca", 2017),
    ("sharegpt/sharegpt_v3_sample1011.json", "sharegpt", 1011),
])
def test_real_files_load_every_record_kept_or_rejected(shared_data, relative, fmt, total):
    records, rejects = _read(shared_data / relative)
    forced, _ = _read(shared_data / relative, fmt)
    assert records == forced  # auto-detection picked `fmt`
    print(f"\n{relative}: {total} read, {len(records)} kept, {rejects.total} rejected\n"
          f"{rejects.report()}")
    assert len(records) + rejects.total == total
    assert len({r["id"] for r in records}) == len(records)
    if fmt in ("gsm8k", "rft"):
        assert rejects.total == 0
        assert all(r["messages"][1]["content"].split("\n")[-1].startswith("#### ")
                   for r in records)


def test_gsm8k_one_256th_is_29_ids_every_time(shared_data):
    records, _ = _read(shared_data / "gsm8k" / "train.jsonl")
    first = [r["id"] for r in select(records, Fraction(1, 256), 0, "gsm8k")]
    again, _ = _read(shared_data / "gsm8k" / "train.jsonl")
    assert len(first) == 29 and [r["id"] for r in select(again, Fraction(1, 256), 0, "gsm8k")] \
        == first
    bigger = {r["id"] for r in select(records, Fraction(1, 64), 0, "gsm8k")}
    assert len(bigger) == 117 and set(first) <= bigger


def test_gsm8k_one_256th_through_ray_with_1_or_2_workers(ray_local, shared_data):
    from trainers.data.collate import iter_worker_rows
    from trainers.data.pipeline import build_stage_dataset

    path = shared_data / "gsm8k" / "train.jsonl"
    expected = sorted(r["id"] for r in select(_read(path)[0], Fraction(1, 256), 0, "gsm8k"))
    specs = {"gsm8k": SourceSpec("gsm8k", str(path))}
    recipe = make_recipe([("gsm8k", Fraction(1, 256))])
    seen = []
    for blocks in (1, 2):
        dataset, report = build_stage_dataset(recipe, specs, "tiny_llama", seed=0, epochs=1,
                                              num_blocks=blocks)
        assert report.rows_per_epoch == 29 and report.dropped == 0
        for world in (1, 2):
            ids = [r["id"] for rank in range(world) for r in iter_worker_rows(dataset, rank, world)]
            seen.append(sorted(ids))
    assert seen == [expected] * 4


def _corrupt_copies(shared_data, tmp_path):
    lines = (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()[:40]
    lines[4] = lines[4][:-3]  # cut the closing quote and brace: broken JSON
    row = json.loads(lines[9])
    del row["answer"]
    lines[9] = json.dumps(row)
    gsm = tmp_path / "gsm8k_corrupt.jsonl"
    gsm.write_text("\n".join(lines) + "\n")
    chats = json.loads((shared_data / "sharegpt" / "sharegpt_v3_sample1011.json").read_text())[:30]
    first_human = next(i for i, c in enumerate(chats) if c["conversations"][0]["from"] == "human"
                       and len(c["conversations"]) >= 4)
    turns = chats[first_human]["conversations"]
    turns[1]["from"] = "human"  # two user turns in a row
    share = tmp_path / "sharegpt_corrupt.json"
    share.write_text(json.dumps(chats, indent=1))
    return gsm, share, first_human


def test_corrupted_real_copies_are_reported_and_strict_names_the_first(shared_data, tmp_path):
    gsm, share, bad_index = _corrupt_copies(shared_data, tmp_path)
    records, rejects = _read(gsm)
    assert len(records) == 38 and rejects.total == 2
    assert rejects.examples["missing field: answer"] == [f"{gsm}:10"]
    (broken,) = [k for k in rejects.counts if k.startswith("malformed JSON")]
    assert rejects.examples[broken] == [f"{gsm}:5"]
    with pytest.raises(RecordError, match=rf"{gsm}:5: malformed JSON"):
        read_records(SourceSpec("gsm8k", str(gsm)), strict=True)
    records, rejects = _read(share)
    starts = [i + 1 for i, text in enumerate(share.read_text().splitlines()) if text == " {"]
    assert len(starts) == 30 and len(records) + rejects.total == 30
    bad_order = rejects.examples["roles do not alternate user/assistant"]
    assert f"{share}:{starts[bad_index]}" in bad_order
    # examples hold each reason's first occurrences, so the smallest line is the first problem
    first = min(int(where.rsplit(":", 1)[1]) for ex in rejects.examples.values() for where in ex)
    with pytest.raises(RecordError) as err:
        read_records(SourceSpec("general", str(share)), strict=True)
    assert (err.value.path, err.value.line) == (str(share), first)
    assert str(err.value).startswith(f"{share}:{first}: ")
