"""The test items of the evaluations, loaded exactly as the evals load them (evals.gsm8k,
evals.humaneval, evals.mtbench), for decontamination: `python -m sweep.decontaminate` scans
sources against them, and `--decontaminate` on a sweep writes them once into its storage
(sweep/planning/resolution.py) for every training source to leave out what overlaps.
"""

from __future__ import annotations

from pathlib import Path

from evals import gsm8k, humaneval, mtbench
from trainers.data.ngrams import TestItem

TESTS = ("gsm8k", "humaneval", "mtbench")
# The collected public files (../shared/data/SOURCES.md): GSM8K's test split is not shipped by
# any installed package, so a bare `gsm8k` means this file when it exists.
GSM8K_SHARED = Path("../shared/data/gsm8k/test.jsonl")


def _gsm8k(path: str | None) -> tuple[list[TestItem], str]:
    if path is None:
        near = [GSM8K_SHARED, Path(__file__).resolve().parents[2] / GSM8K_SHARED]
        found = next((p for p in near if p.is_file()), None)
        if found is None:
            raise FileNotFoundError("unavailable offline: no ../shared/data/gsm8k/test.jsonl; "
                                    "pass --tests gsm8k=PATH")
        path = str(found.resolve())
    return [TestItem("gsm8k", q.id, (q.question, q.answer)) for q in gsm8k.load_problems(path)], path


def _humaneval(path: str | None) -> tuple[list[TestItem], str]:
    where = path or str(humaneval.shipped_data())
    return [TestItem("humaneval", p.task_id, (p.prompt, p.canonical_solution))
            for p in humaneval.load_problems(path)], where


def _mtbench(path: str | None) -> tuple[list[TestItem], str]:
    if path is not None and Path(path).is_file():
        path = str(Path(path).parent)  # question.jsonl given: its folder is FastChat's layout
    data = mtbench.load_mtbench(path)
    return [TestItem("mtbench", f"mtbench/{q['question_id']}", tuple(q["turns"]))
            for q in data.questions], data.origin.split(" (")[0]


LOADERS = {"gsm8k": _gsm8k, "humaneval": _humaneval, "mtbench": _mtbench}


def load_tests(spec: str) -> tuple[list[TestItem], dict]:
    """Items of `gsm8k,humaneval=PATH,...` and, per test, where it came from (or why it is
    unavailable). A named PATH that cannot be read is an error; a missing default is noted."""
    items, info = [], {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, path = part.partition("=")
        if name not in LOADERS:
            raise ValueError(f"unknown test set {name!r}; choose from {TESTS}")
        try:
            got, where = LOADERS[name](path or None)
        except (FileNotFoundError, ImportError) as err:
            if path:
                raise
            info[name] = {"unavailable": str(err)}
            continue
        items += got
        info[name] = {"items": len(got), "from": where}
    return items, info
