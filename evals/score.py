"""Score completions made anywhere: GSM8K, HumanEval or HumanEval+ from a JSONL file.

Each line: `{"task_id" | "id" | "question": ..., "completion": "..."}` with ids as in the
benchmark's own file (HumanEval "HumanEval/0"; GSM8K "gsm8k/<row>" or the question text).
Several lines for one HumanEval task are samples (pass@k). Code runs in evals/sandbox.py.
    python -m evals.score --eval humaneval --completions samples.jsonl [--data FILE] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field

from evals import gsm8k, humaneval
from evals.sandbox import IsolationRefused
from evals.spec import METRIC_KINDS, RecordError, iter_jsonl
from evals.stats import interval

EVALS = ("gsm8k", "humaneval", "humanevalplus")
ID_KEYS = ("task_id", "id", "question")


@dataclass
class Completions:
    """Completions by benchmark id, with what could not be matched counted by reason."""

    by_id: dict[str, list[str]] = field(default_factory=dict)
    counts: Counter = field(default_factory=Counter)
    unknown_examples: list[str] = field(default_factory=list)


def read_completions(path: str, resolve) -> Completions:
    """`resolve(line_object) -> benchmark id or None (unknown)`; bad lines raise RecordError."""
    result = Completions()
    for number, obj in iter_jsonl(path):
        if not isinstance(obj.get("completion"), str):
            raise RecordError(path, number, "no string field 'completion'")
        if not any(k in obj for k in ID_KEYS):
            raise RecordError(path, number, f"no id: expected one of {list(ID_KEYS)}")
        key = resolve(obj)
        result.counts["lines"] += 1
        if key is None:
            result.counts["unknown_ids"] += 1
            if len(result.unknown_examples) < 5:
                result.unknown_examples.append(f"{path}:{number}")
            continue
        if key in result.by_id:
            result.counts["duplicates"] += 1
        result.by_id.setdefault(key, []).append(obj["completion"])
    return result


def score_gsm8k(path: str, data: str | None) -> dict:
    questions = gsm8k.load_problems(data)
    by_question = {q.question.strip(): q.id for q in questions}
    ids = {q.id for q in questions}

    def resolve(obj):
        for key in ("task_id", "id"):
            if key in obj:
                value = str(obj[key])
                value = value if value.startswith("gsm8k/") else f"gsm8k/{value}"
                return value if value in ids else None
        return by_question.get(str(obj["question"]).strip())

    completions = read_completions(path, resolve)
    # GSM8K has one reply per question: a duplicate is counted and its later copies ignored
    metrics, records = gsm8k.score(questions, {k: v[0] for k, v in completions.by_id.items()})
    return _result("gsm8k", gsm8k.GSM8K.version, metrics, records, completions,
                   gsm8k.items(records))


def score_humaneval(path: str, data: str | None, plus: bool, workers: int | None,
                    unsafe_sandbox: bool = False) -> dict:
    if plus and data is None:
        raise RecordError("--data", None, "HumanEval+ needs its file: --data "
                                          "PATH/HumanEvalPlus.jsonl.gz")
    problems = humaneval.load_problems(data, plus=plus)
    ids = {p.task_id for p in problems}

    def resolve(obj):
        value = str(obj.get("task_id", obj.get("id", "")))
        return value if value in ids else None

    completions = read_completions(path, resolve)
    metrics, records = humaneval.score(problems, completions.by_id, plus=plus, workers=workers,
                                       allow_unsafe=unsafe_sandbox)
    spec = humaneval.HUMANEVAL_PLUS if plus else humaneval.HUMANEVAL
    return {**_result(spec.name, spec.version, metrics, records, completions,
                      humaneval.items(problems, records)),
            "isolation": humaneval.isolation_text(metrics, unsafe_sandbox)}


def _result(name, version, metrics, records, completions: Completions, items) -> dict:
    counts = {"lines": completions.counts["lines"], "scored": metrics["scored"],
              "missing": metrics["missing"], "unknown_ids": completions.counts["unknown_ids"],
              "duplicates": completions.counts["duplicates"],
              "unknown_examples": completions.unknown_examples}
    return {"eval": name, "version": version, "metrics": metrics, "counts": counts,
            "items": items, "verdicts": records}


def _with_interval(result: dict, metric: str) -> str:
    """'0.4200 [95% CI 0.3280, 0.5179] n=100' from the per-item outcomes."""
    mean, lo, hi, n = interval([i["value"] for i in result["items"] if i["metric"] == metric],
                               METRIC_KINDS[metric])
    if n == 0:
        return "- (n=0)"
    return f"{mean:.4f} [95% CI {lo:.4f}, {hi:.4f}] n={n}"


def summary(result: dict) -> str:
    m, c = result["metrics"], result["counts"]
    if result["eval"] == "gsm8k":
        score = (f"accuracy strict {_with_interval(result, 'accuracy_strict')}, "
                 f"flexible {_with_interval(result, 'accuracy_flexible')}")
    else:
        passes = ", ".join(f"{k} {v:.4f}" for k, v in m.items()
                           if k.startswith("pass@") and k != "pass@1")
        score = (f"pass@1 {_with_interval(result, 'pass@1')}{', ' if passes else ''}{passes} "
                 f"({m['passed']} problems passed; isolation {', '.join(m['isolation'])})")
    return (f"{result['eval']}: {score}\n  scored {c['scored']}, missing {c['missing']}, "
            f"unknown ids {c['unknown_ids']}, duplicates {c['duplicates']} "
            f"(from {c['lines']} lines)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", required=True, choices=EVALS)
    parser.add_argument("--completions", required=True, help="JSONL of id + completion")
    parser.add_argument("--data", default=None, help="benchmark file or Hugging Face id")
    parser.add_argument("--json", action="store_true", help="print a JSON object instead")
    parser.add_argument("--workers", type=int, default=None, help="sandboxes at once")
    parser.add_argument("--unsafe-sandbox", action="store_true",
                        help="run the code even without bubblewrap or namespaces (refused "
                             "otherwise; recorded as the result's isolation)")
    args = parser.parse_args(argv)
    try:
        if args.eval == "gsm8k":
            result = score_gsm8k(args.completions, args.data)
        else:
            result = score_humaneval(args.completions, args.data,
                                     plus=args.eval == "humanevalplus", workers=args.workers,
                                     unsafe_sandbox=args.unsafe_sandbox)
    except (RecordError, IsolationRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1, default=str) if args.json else summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
