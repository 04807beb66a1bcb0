"""GSM8K: zero-shot with the Vicuna template, greedy, exact numeric match.

Extraction: strict takes the number after `####`; flexible follows lm-eval's gsm8k
`flexible-extract` filter: the LAST match of `(-?[$0-9.,]{2,})|(-?[0-9]+)` anywhere in the reply,
even after a `####` line ("#### 5\nSo 6" is strict 5, flexible 6), and, as in lm-eval, a last
match without a digit ("...") scores wrong. Both are then normalised (commas, `$`, units,
trailing dots) and compared exactly as fractions ("18.00" == "18").
Per-item outcomes: `items(records)` gives each question's `accuracy_strict` and
`accuracy_flexible` as 1.0/0.0 under its id `gsm8k/<row>` (evals/run.py adds `ref_logprob`,
the mean log-likelihood per token of the reference solution, a low-variance companion).
    python -m evals.score --eval gsm8k --completions replies.jsonl --data gsm8k/test.jsonl
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from evals.spec import EvalSpec, RecordError, iter_jsonl
from trainers.data.vicuna import STOP

# version 2: flexible = lm-eval's flexible-extract (last number, even after "####"); per-item
# outcomes and ref_logprob in the result
GSM8K = EvalSpec("gsm8k", version="2", max_new_tokens=512, stop=STOP)
HF_ID = "openai/gsm8k"

NUMBER = r"-?[$€£]?\s*(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+)?"
STRICT = re.compile(r"####\s*(" + NUMBER + ")")
# lm-evaluation-harness, tasks/gsm8k/gsm8k.yaml, filter "flexible-extract" (group_select: -1)
FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


@dataclass(frozen=True)
class Question:
    id: str  # "gsm8k/<0-based row>", rows as in the benchmark's own file
    question: str
    answer: str  # the worked solution, ending in "#### <number>"
    target: Fraction


def normalize(text: str | None) -> Fraction | None:
    """"$1,234.50." -> Fraction(2469, 2); "3/4" -> Fraction(3, 4); None when no number."""
    if text is None:
        return None
    cleaned = text.replace("−", "-").replace(",", "").replace(" ", "")
    cleaned = re.sub(r"[$€£]", "", cleaned).rstrip(".")
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def extract_strict(reply: str) -> str | None:
    match = STRICT.search(reply)
    return match.group(1).strip() if match else None


def extract_flexible(reply: str) -> str | None:
    """lm-eval's flexible-extract: the last match in the whole reply (the `####` line is not
    special), the first non-empty group of that match; None when nothing matches."""
    matches = FLEXIBLE.findall(reply)
    if not matches:
        return None
    long_form, digits = matches[-1]
    return long_form or digits


def load_problems(data: str | Path | None = None, *, limit: int | None = None) -> list[Question]:
    """The test set from a JSONL (`question`, `answer`; a local path or an s3:// / gs:// URI) or
    a Hugging Face id (default)."""
    rows = _rows(data if data is not None else HF_ID)
    questions = []
    for number, row, where in rows:
        for key in ("question", "answer"):
            if not isinstance(row.get(key), str):
                raise RecordError(where, number, f"no string field {key!r}")
        target = normalize(extract_strict(row["answer"]))
        if target is None:
            raise RecordError(where, number, "answer has no '#### <number>' line")
        questions.append(Question(f"gsm8k/{len(questions)}", row["question"], row["answer"],
                                  target))
        if limit is not None and len(questions) >= limit:
            break
    return questions


def _rows(source: str | Path):
    if "://" in str(source):  # a file in object storage (a sweep's built-in held-out split)
        return [(n, row, str(source)) for n, row in iter_jsonl(str(source))]
    path = Path(source)
    if path.exists():
        return [(n, row, str(path)) for n, row in iter_jsonl(path)]
    from datasets import (
        load_dataset,  # real users have the network; tests never come here  # lazy: light command (hub only)
    )

    dataset = load_dataset(str(source), "main", split="test")
    return [(i + 1, dict(row), str(source)) for i, row in enumerate(dataset)]


def conversation(question: Question) -> list[dict]:
    return [{"role": "user", "content": question.question}]


def score_one(question: Question, reply: str) -> dict:
    strict, flexible = extract_strict(reply), extract_flexible(reply)
    return {"id": question.id, "target": str(question.target), "completion": reply,
            "strict": strict, "flexible": flexible,
            "strict_correct": normalize(strict) == question.target,
            "flexible_correct": normalize(flexible) == question.target}


def score(questions: list[Question], replies: Mapping[str, str] | Sequence[str]
          ) -> tuple[dict, list[dict]]:
    """(metrics, per-example records). `replies`: id -> reply, or one reply per question in order.
    Accuracy is over scored questions; questions without a reply are counted as missing."""
    if not isinstance(replies, Mapping):
        if len(replies) != len(questions):
            raise ValueError(f"{len(replies)} replies for {len(questions)} questions")
        replies = {q.id: r for q, r in zip(questions, replies)}
    records = [score_one(q, replies[q.id]) for q in questions if q.id in replies]
    n = len(records)
    metrics = {"questions": len(questions), "scored": n, "missing": len(questions) - n,
               "accuracy_strict": sum(r["strict_correct"] for r in records) / n if n else 0.0,
               "accuracy_flexible": sum(r["flexible_correct"] for r in records) / n if n else 0.0}
    return metrics, records


def items(records: Sequence[dict]) -> list[dict]:
    """Per-question outcomes, 1.0/0.0, under the same keys as the accuracy metrics, so the mean
    of each metric's items is that metric."""
    return [{"item": r["id"], "metric": metric, "value": 1.0 if r[field] else 0.0}
            for r in records
            for metric, field in (("accuracy_strict", "strict_correct"),
                                  ("accuracy_flexible", "flexible_correct"))]
