"""`python -m evals.score`: completions made elsewhere, matched by id, counted, judged, reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from paths import ASSETS

from evals import score

ASSET = ASSETS / "eval_gsm8k.jsonl"


def _write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_gsm8k_by_id_and_question_with_counts(tmp_path, capsys):
    questions = [json.loads(line) for line in ASSET.read_text().splitlines()]
    completions = _write(tmp_path / "c.jsonl", [
        {"id": 0, "completion": "#### 18"},
        {"id": "gsm8k/1", "completion": "The answer is 3."},
        {"question": questions[2]["question"], "completion": "#### 7"},  # wrong
        {"id": 0, "completion": "#### 99"},  # duplicate: counted, first kept
        {"task_id": "gsm8k/77", "completion": "#### 1"},  # unknown
    ])
    code = score.main(["--eval", "gsm8k", "--completions", str(completions), "--data",
                       str(ASSET), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["counts"] | {"unknown_examples": None} == {
        "lines": 5, "scored": 3, "missing": 1, "unknown_ids": 1, "duplicates": 1,
        "unknown_examples": None}
    assert result["counts"]["unknown_examples"] == [f"{completions}:5"]
    assert result["metrics"]["accuracy_strict"] == pytest.approx(1 / 3)
    assert result["metrics"]["accuracy_flexible"] == pytest.approx(2 / 3)
    assert [v["flexible_correct"] for v in result["verdicts"]] == [True, True, False]
    score.main(["--eval", "gsm8k", "--completions", str(completions), "--data", str(ASSET)])
    # Wilson 95% intervals of 1/3 and 2/3 (n = 3 scored): [0.0615, 0.7923], [0.2077, 0.9385]
    assert ("accuracy strict 0.3333 [95% CI 0.0615, 0.7923] n=3, "
            "flexible 0.6667 [95% CI 0.2077, 0.9385] n=3") in capsys.readouterr().out


def test_humaneval_samples_are_judged_in_the_sandbox(tmp_path, capsys):
    from evals.humaneval import load_problems

    p0, p1, p2 = load_problems(limit=3)
    completions = _write(tmp_path / "samples.jsonl", [
        {"task_id": p0.task_id, "completion": p0.canonical_solution},
        {"task_id": p0.task_id, "completion": "    return True\n"},  # second sample: wrong
        {"task_id": p1.task_id, "completion": f"```python\n{p1.prompt}{p1.canonical_solution}```"},
        {"task_id": p2.task_id, "completion": "    import os\n    os._exit(0)\n"},
        {"task_id": "HumanEval/9999", "completion": "pass"},
    ])
    code = score.main(["--eval", "humaneval", "--completions", str(completions), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    counts = result["counts"]
    assert (counts["scored"], counts["missing"], counts["unknown_ids"], counts["duplicates"]) \
        == (3, 161, 1, 1)
    verdicts = {(v["task_id"], v["sample"]): v["passed"] for v in result["verdicts"]}
    assert verdicts == {(p0.task_id, 0): True, (p0.task_id, 1): False, (p1.task_id, 0): True,
                        (p2.task_id, 0): False}
    assert result["metrics"]["pass@1"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert all(v["isolation"] for v in result["verdicts"])


def test_bad_lines_name_the_file_and_line(tmp_path, capsys):
    cases = {
        "not json": ['{"id": 0, "completion": "#### 18"}', "{oops"],
        "no completion": [{"id": 0, "completion": "#### 18"}, {"id": 1, "answer": "3"}],
        "no id": [{"completion": "#### 18"}],
        "not an object": ['["id", 0]'],
    }
    expected = {"not json": ":2: not valid JSON", "no completion": ":2: no string field",
                "no id": ":1: no id", "not an object": ":1: expected a JSON object"}
    for name, rows in cases.items():
        path = _write(tmp_path / f"{name.replace(' ', '_')}.jsonl", rows)
        code = score.main(["--eval", "gsm8k", "--completions", str(path), "--data", str(ASSET)])
        err = capsys.readouterr().err
        assert code == 2 and f"{path}{expected[name]}" in err, (name, err)


def test_humaneval_plus_needs_its_file(tmp_path, capsys):
    path = _write(tmp_path / "c.jsonl", [{"task_id": "HumanEval/0", "completion": ""}])
    assert score.main(["--eval", "humanevalplus", "--completions", str(path)]) == 2
    assert "HumanEvalPlus.jsonl.gz" in capsys.readouterr().err
