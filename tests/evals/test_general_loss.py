"""The `general_loss` eval (a judge-free PROXY for general ability, not MT-Bench) through
`evaluate` on the tiny model: held-out chats from any format, rejects counted, items whose mean
is the metric, the cache, and the built-in general_test as the default data."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from evals import likelihood
from evals.run import evaluate, format_table
from trainers.data.corpora import FILES, write_builtin_corpora

SIZES = {"math": 8, "code": 4, "general": 8, "math_test": 4, "general_test": 6}


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    return write_builtin_corpora(tmp_path_factory.mktemp("corpora"), SIZES)


def test_general_loss_through_evaluate(tmp_path, corpora, tiny_model, tokenizer):
    kwargs = {"out_dir": tmp_path / "out", "cache_dir": tmp_path / "cache",
              "data": {"general_loss": str(corpora["general_test"])}, "model_id": "tiny-seed0"}
    result = evaluate((tiny_model, tokenizer), "general_loss", limit=4, **kwargs)["general_loss"]
    assert result["eval"] == "general_loss" and result["version"] == likelihood.GENERAL_LOSS.version
    assert not result["cached"] and result["limit"] == 4
    items = result["items"]
    assert [i["item"] for i in items] == [f"syn-general-test-{i:06d}" for i in range(4)]
    assert {i["metric"] for i in items} == {"general_loss"}
    metrics = result["metrics"]
    assert metrics["general_loss"] == pytest.approx(statistics.fmean(i["value"] for i in items))
    # a random model is near uniform over the vocabulary: about ln(V) nats per reply token
    for name in ("general_loss", "general_loss_tokens"):
        assert abs(metrics[name] - math.log(len(tokenizer))) < 1.0, (name, metrics[name])
    assert result["counts"]["chats"] == 4 and result["rejects"]["total"] == 0
    records = [json.loads(x) for x in Path(result["records"]).read_text().splitlines()]
    assert [r["id"] for r in records] == [i["item"] for i in items]
    assert result["counts"]["tokens"] == sum(r["tokens"] for r in records) > 100
    again = evaluate((tiny_model, tokenizer), "general_loss", limit=4, **kwargs)["general_loss"]
    assert again["cached"] and again["items"] == items and again["metrics"] == metrics
    table = format_table({"general_loss": result})
    assert "general_loss_tokens" in table and f"{metrics['general_loss']:.4f}" in table


def test_any_format_and_rejects_are_counted(tmp_path, tiny_model, tokenizer):
    chats = tmp_path / "chats.jsonl"
    rows = [{"id": "ok-1", "messages": [{"role": "user", "content": "Hi"},
                                        {"role": "assistant", "content": "Hello there."}]},
            {"id": "no-reply", "messages": [{"role": "user", "content": "Hi"}]},
            {"id": "ok-2", "messages": [{"role": "user", "content": "Tips?"},
                                        {"role": "assistant", "content": "Start early."}]}]
    chats.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    result = evaluate((tiny_model, tokenizer), ["general_loss"], out_dir=tmp_path / "out",
                      data={"general_loss": str(chats)})["general_loss"]
    assert [i["item"] for i in result["items"]] == ["ok-1", "ok-2"]
    assert result["rejects"]["total"] == 2  # the chat without a reply and the broken line
    assert result["metrics"]["scored"] == 2


def test_default_data_is_the_builtin_general_test_written_once(tmp_path, monkeypatch):
    """With no data given, the held-out chats are the built-in general_test of seed 0, written
    by the one built-in writer into the cache, disjoint from the general training corpus."""

    monkeypatch.setenv("DMT_CACHE", str(tmp_path))
    path = likelihood.default_general_data()
    assert path.parent.parent == tmp_path / "corpora" and path.name == FILES["general_test"][0]
    mtime = path.stat().st_mtime_ns
    assert likelihood.default_general_data() == path and path.stat().st_mtime_ns == mtime
    chats = likelihood.load_chats(limit=3)
    assert [c["id"] for c in chats] == [f"syn-general-test-{i:06d}" for i in range(3)]
    train = json.loads((path.parent / FILES["general"][0]).read_text())
    trained = {tuple(t["value"] for t in c["conversations"]) for c in train}
    assert not trained & {tuple(m["content"] for m in c["messages"]) for c in chats}
