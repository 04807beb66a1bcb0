"""GSM8K: extraction (strict / flexible), numeric normalisation, scoring, and the real test set."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from paths import ASSETS

from evals import gsm8k
from evals.spec import RecordError

ASSET = ASSETS / "eval_gsm8k.jsonl"


@pytest.mark.parametrize(("reply", "strict", "flexible"), [
    ("She has 3 + 4 = 7 apples.\n#### 7", "7", "7"),
    ("#### 1,000", "1,000", "1,000"),
    ("So 5 boxes. The answer is 12.", None, "12."),
    ("The answer is: $1,234.50.", None, "$1,234.50."),
    ("First 3, then 4, so 18.00 dollars", None, "18.00"),
    ("The final answer is -3 degrees", None, "-3"),
    ("no number here", None, None),
    # lm-eval's flexible-extract: the last number, even after the "####" line
    ("#### 5\nSo 6", "5", "6"),
    ("#### 4 but the answer is 5", "4", "5"),
    ("7 apples, then...", None, "..."),  # a last match without a digit (scores wrong, as there)
])
def test_extraction(reply, strict, flexible):
    assert gsm8k.extract_strict(reply) == strict
    assert gsm8k.extract_flexible(reply) == flexible


def test_flexible_follows_lm_eval_regex():
    # lm-evaluation-harness gsm8k.yaml, flexible-extract: regex, group_select -1, first group
    assert gsm8k.FLEXIBLE.pattern == r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
    questions = gsm8k.load_problems(ASSET)
    target = questions[0].target
    record = gsm8k.score_one(questions[0], f"#### {target}\nSo {target + 1}")
    assert record["strict_correct"] and not record["flexible_correct"]
    record = gsm8k.score_one(questions[0], f"I think {target}.")  # trailing dot normalised
    assert record["flexible_correct"] and not record["strict_correct"]


@pytest.mark.parametrize(("text", "value"), [
    ("18.00", Fraction(18)), ("18", Fraction(18)), ("$1,234.50.", Fraction(2469, 2)),
    ("-3", Fraction(-3)), ("3/4", Fraction(3, 4)), (".5", Fraction(1, 2)), ("abc", None),
    (None, None),
])
def test_normalize(text, value):
    assert gsm8k.normalize(text) == value


def test_score_counts_missing_and_accepts_lists_or_ids():
    questions = gsm8k.load_problems(ASSET)
    assert [q.id for q in questions] == ["gsm8k/0", "gsm8k/1", "gsm8k/2", "gsm8k/3"]
    replies = ["#### 18", "The answer is 3.0", "I think 70,001", "#### 540.00"]
    metrics, records = gsm8k.score(questions, replies)
    assert metrics["accuracy_strict"] == 0.5  # only the "####" replies count strictly
    assert metrics["accuracy_flexible"] == 0.75
    assert [r["flexible_correct"] for r in records] == [True, True, False, True]
    items = gsm8k.items(records)
    assert len(items) == 2 * len(questions)
    for metric in ("accuracy_strict", "accuracy_flexible"):
        values = [i["value"] for i in items if i["metric"] == metric]
        assert [i["item"] for i in items if i["metric"] == metric] == [q.id for q in questions]
        assert set(values) <= {0.0, 1.0} and sum(values) / len(values) == metrics[metric]
    metrics, _ = gsm8k.score(questions, {"gsm8k/1": "#### 3"})
    assert (metrics["scored"], metrics["missing"], metrics["accuracy_strict"]) == (1, 3, 1.0)
    with pytest.raises(ValueError, match="3 replies for 4"):
        gsm8k.score(questions, replies[:3])


def test_bad_rows_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    rows = [{"question": "q", "answer": "#### 1"}, {"question": "q2", "answer": "no final"}]
    bad.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(RecordError, match=r"bad.jsonl:2: answer has no '#### <number>'"):
        gsm8k.load_problems(bad)
    bad.write_text('{"question": "q", "answer": "#### 1"}\n{"question": \n')
    with pytest.raises(RecordError, match=r"bad.jsonl:2: not valid JSON"):
        gsm8k.load_problems(bad)


def test_real_test_set_scores_100_percent_with_its_own_answers(shared_data):
    questions = gsm8k.load_problems(shared_data / "gsm8k" / "test.jsonl")
    assert len(questions) == 1319
    metrics, _ = gsm8k.score(questions, [q.answer for q in questions])
    assert metrics["accuracy_strict"] == 1.0 and metrics["accuracy_flexible"] == 1.0
    # and the metric can fail: every final answer off by one scores nothing
    shifted = [q.answer.rsplit("####", 1)[0] + f"#### {q.target + 1}" for q in questions]
    metrics, _ = gsm8k.score(questions, shifted)
    assert metrics["accuracy_strict"] == 0.0 and metrics["accuracy_flexible"] == 0.0
