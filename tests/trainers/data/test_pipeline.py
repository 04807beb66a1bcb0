"""The stage dataset: exact epoch order on any block layout, counted rejects, worker sharding,
and (slow) consumption inside a real 2-worker TorchTrainer through get_dataset_shard."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from trainers.data.corpora import folder_specs, write_builtin_corpora
from trainers.data.recipe import make_recipe
from trainers.data.selection import count_for, order_key
from trainers.data.source_spec import SourceSpec

SIZES = {"math": 300, "code": 150, "general": 150, "math_test": 20}
RECIPE = make_recipe([("math", Fraction(1, 4)), ("code", 40), ("general", Fraction(1, 4)),
                      ("odd", Fraction(1))])


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pipeline")
    write_builtin_corpora(directory, SIZES)
    odd = directory / "odd.jsonl"  # one special-token text, one far too long, two fine
    rows = [[("user", "hi <|im_start|> there"), ("assistant", "hello")],
            [("user", "long " * 400), ("assistant", "ok")],
            [("user", "What is 2+2?"), ("assistant", "4")],
            [("user", "Name a month."), ("assistant", "May")]]
    odd.write_text("".join(json.dumps({"messages": [{"role": r, "content": c} for r, c in row]})
                           + "\n" for row in rows))
    return {**folder_specs(directory), "odd": SourceSpec("odd", str(odd))}


def _build(specs, **kw):
    from trainers.data.pipeline import build_stage_dataset

    options = {"seed": 5, "epochs": 2, "max_len": 256, "overlong": "drop", **kw}
    return build_stage_dataset(RECIPE, specs, "tiny_llama", **options)


def _rows(dataset):
    from trainers.data.collate import iter_worker_rows

    return list(iter_worker_rows(dataset, 0, 1))


@pytest.fixture(scope="module")
def built(ray_local, specs):
    dataset, report = _build(specs, num_blocks=3)
    return dataset, report, _rows(dataset)


def test_rows_follow_the_seeded_order_of_each_epoch(built):
    from trainers.data.ordering import ROW_COLUMNS

    dataset, report, rows = built
    assert dataset.columns() == ROW_COLUMNS
    per_epoch = [[r for r in rows if r["epoch"] == e] for e in (0, 1)]
    assert [r["epoch"] for r in rows] == [0] * len(per_epoch[0]) + [1] * len(per_epoch[1])
    for epoch, epoch_rows in enumerate(per_epoch):
        assert [r["position"] for r in epoch_rows] == list(range(report.rows_per_epoch))
        keys = [order_key(5, epoch, r["source"], r["id"]) for r in epoch_rows]
        assert keys == sorted(keys)
    ids = [[(r["source"], r["id"]) for r in epoch_rows] for epoch_rows in per_epoch]
    assert sorted(ids[0]) == sorted(ids[1]) and ids[0] != ids[1]
    for row in rows:
        assert len(row["input_ids"]) == len(row["labels"]) == row["n_tokens"] <= 256


def test_report_counts_every_record(built):
    _, report, rows = built
    by_name = {s.name: s for s in report.sources}
    assert by_name["math"].selected == count_for(Fraction(1, 4), 300) == 75
    assert by_name["code"].selected == 40
    for s in report.sources:
        assert s.read == s.kept + s.rejects["total"]
        assert s.used == s.selected - sum(s.format_rejects.values())
    assert by_name["odd"].format_rejects == {"over_max_len": 1, "special_token_in_text": 1}
    dropped = sum(sum(s.format_rejects.values()) for s in report.sources)
    assert report.dropped == dropped and by_name["general"].format_rejects["over_max_len"] > 0
    assert report.rows_per_epoch == sum(s.used for s in report.sources)
    epoch0 = [r["n_tokens"] for r in rows if r["epoch"] == 0]
    assert report.tokens.total == sum(epoch0) and report.tokens.max == max(epoch0)
    assert json.loads(json.dumps(report.to_dict()))["rows_per_epoch"] == report.rows_per_epoch
    text = report.format()
    assert "[odd]" in text and "over_max_len" in text and "selected 75" in text


def test_same_rows_on_another_block_layout(built, specs):
    _, _, rows = built
    other, _ = _build(specs, num_blocks=1)
    again = _rows(other)
    assert [(r["epoch"], r["position"], r["id"]) for r in again] == \
        [(r["epoch"], r["position"], r["id"]) for r in rows]
    assert all(np.array_equal(a["input_ids"], b["input_ids"]) for a, b in zip(again, rows))


def test_worker_rows_split_by_position_and_resume_exactly(built):
    from trainers.data.collate import iter_worker_rows

    dataset, _, rows = built
    rank0 = list(iter_worker_rows(dataset, 0, 2))
    rank1 = list(iter_worker_rows(dataset, 1, 2))
    assert all(r["position"] % 2 == 0 for r in rank0) and all(r["position"] % 2 for r in rank1)
    keys = sorted((r["epoch"], r["position"]) for r in rank0 + rank1)
    assert keys == [(r["epoch"], r["position"]) for r in rows]
    cut = rank1[len(rank1) // 2]
    resumed = list(iter_worker_rows(dataset, 1, 2, start_after=(cut["epoch"], cut["position"])))
    assert [r["id"] for r in resumed] == [r["id"] for r in rank1[len(rank1) // 2 + 1:]]
    with pytest.raises(ValueError):
        list(iter_worker_rows(dataset, 2, 2))


def test_micro_batches_pad_to_their_longest_row(built):
    from trainers.data.collate import collate_padded, iter_micro_batches

    _, _, rows = built
    batches = list(iter_micro_batches(rows[:10], 4, lambda g: collate_padded(g, 2)))
    assert [b["input_ids"].shape[0] for b in batches] == [4, 4, 2]
    assert batches[0]["input_ids"].shape[1] == max(r["n_tokens"] for r in rows[:4])


def test_truncation_is_counted(ray_local, specs):
    _, report = _build(specs, overlong="truncate", max_len=64, epochs=1)
    assert report.truncated > 0 and report.tokens.max == 64
    by_name = {s.name: s for s in report.sources}
    assert by_name["general"].truncated == by_name["general"].used > 0
    # the long sample's reply lies past 64 tokens: truncating it leaves nothing to learn
    assert by_name["odd"].format_rejects == {"no_assistant_tokens": 1, "special_token_in_text": 1}


def test_model_template_reaches_the_tokenizing_tasks(ray_local, specs, tokenizer, monkeypatch):
    """template="model": every row is the tokenizer's own chat template (ChatML, its default
    system turn first); the special-token sample is still a counted reject; a tokenizer without
    a chat template fails on the driver before any Ray work."""
    import copy

    from trainers.data import pipeline

    dataset, report = _build(specs, epochs=1, template="model")
    by_name = {s.name: s for s in report.sources}
    assert by_name["odd"].format_rejects["special_token_in_text"] == 1
    rows = _rows(dataset)
    assert rows and all(tokenizer.decode(r["input_ids"]).startswith("<|im_start|>system\n")
                        for r in rows)
    bare = copy.deepcopy(tokenizer)
    bare.chat_template = None
    monkeypatch.setattr(pipeline, "_tokenizer", lambda name: bare)
    with pytest.raises(ValueError, match="has no chat template"):
        _build(specs, template="model")


@pytest.mark.slow
def test_a_two_worker_torch_trainer_reads_its_rows(built, tmp_path):
    """Each worker gets the whole dataset (not split) and keeps position % 2 == rank."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from trainers.data.pipeline import data_config

    dataset, _, rows = built

    def loop(config):
        import ray.train

        from trainers.data.collate import iter_worker_rows

        ctx = ray.train.get_context()
        shard = ray.train.get_dataset_shard("train")
        mine = [[r["epoch"], r["position"], r["id"]] for r in
                iter_worker_rows(shard, ctx.get_world_rank(), ctx.get_world_size())]
        with open(f"{config['out']}/rank{ctx.get_world_rank()}.json", "w") as f:
            json.dump(mine, f)

    trainer = TorchTrainer(
        loop, train_loop_config={"out": str(tmp_path)}, datasets={"train": dataset},
        dataset_config=data_config(),
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
        run_config=RunConfig(storage_path=str(tmp_path / "runs"), name="pipeline"))
    trainer.fit()
    got = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert all(p % 2 == 0 for _, p, _ in got[0]) and all(p % 2 == 1 for _, p, _ in got[1])
    assert sorted(map(tuple, got[0] + got[1])) == [(r["epoch"], r["position"], r["id"])
                                                    for r in rows]


def test_token_columns_are_lists_even_when_rows_are_equally_long():
    """Left to Ray, equal-length rows become a fixed-shape tensor block that cannot be
    concatenated with variable-shaped ones when the epochs are laid out."""
    import pyarrow as pa

    from trainers.data.pipeline import tokenize_rows

    messages = [[{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"A{i}"}]
                for i in range(3)]
    batch = {"source": np.array(["s"] * 3, dtype=object), "id": np.array(["a", "b", "c"],
             dtype=object), "messages": np.array(messages + [None], dtype=object)[:3]}
    table = tokenize_rows(batch, "tiny_llama", 64, "truncate", "vicuna")
    assert table.schema.field("input_ids").type == pa.list_(pa.int64())
    assert table.schema.field("labels").type == pa.list_(pa.int64())
    assert len(set(table["n_tokens"].to_pylist())) == 1


def test_held_out_test_splits_are_never_trained_on(specs):
    from trainers.data.pipeline import select_sources

    for split in ("math_test", "general_test"):
        with pytest.raises(ValueError, match="held-out test split"):
            select_sources(make_recipe([(split, Fraction(1))]), specs, seed=0)
