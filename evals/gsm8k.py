"""GSM8K: zero-shot with the Vicuna template, greedy, exact numeric match.

Extraction: the number after `####` (strict); for flexible, that, else the number after
"The answer is", else the last number in the reply. Commas, `$`, units and trailing dots are
normalised and numbers compare exactly as fractions ("18.00" == "18").
    python -m evals.score --eval gsm8k --completions replies.jsonl --data gsm8k/test.jsonl
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from evals.records import EvalSpec, RecordError, iter_jsonl
from trainers.template import STOP

GSM8K = EvalSpec("gsm8k", version="1", max_new_tokens=512, stop=STOP)
HF_ID = "openai/gsm8k"

NUMBER = r"-?[$€£]?\s*(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*/\s*\d+)?"
STRICT = re.compile(r"####\s*(" + NUMBER + ")")
ANSWER_IS = re.compile(r"the (?:final )?answer is\s*:?\s*(" + NUMBER + ")", re.IGNORECASE)
ANY_NUMBER = re.compile(NUMBER)


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
    strict = extract_strict(reply)
    if strict is not None:
        return strict
    said = ANSWER_IS.findall(reply)
    if said:
        return said[-1].strip()
    numbers = ANY_NUMBER.findall(reply)
    return numbers[-1].strip() if numbers else None


def load_problems(data: str | Path | None = None, *, limit: int | None = None) -> list[Question]:
    """The test set from a local JSONL (`question`, `answer`) or a Hugging Face id (default)."""
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
    path = Path(source)
    if path.exists():
        return [(n, row, str(path)) for n, row in iter_jsonl(path)]
    from datasets import load_dataset  # real users have the network; tests never come here

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
