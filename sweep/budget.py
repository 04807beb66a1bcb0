"""GPU hours planned against used, per question: the dry run's estimate of each question's runs
beside what the finished runs recorded (a result's `gpu_hours`: the stages it trained on the
run's GPUs plus its evaluation's), and the estimate of what is left (stages not yet trained).
A stage shared by several runs counts once, for the first run in plan order that needs it, so
the questions' planned hours add up to the plan's. Shown by every `--dry-run` once a sweep has
finished runs in its storage:
    python -m sweep.rq4 --preset paper --dry-run --storage s3://bucket/runs
"""

from __future__ import annotations

from collections import defaultdict

from sweep.plan import Plan
from sweep.results import read_results
from trainers.storage import Storage


def planned_by_run(plan: Plan) -> dict[str, float]:
    """run id -> planned GPU hours of the stages first needed by that run."""
    seen: set[str] = set()
    out: dict[str, float] = {}
    for p in plan.runs:
        fresh = [s for s in p.stage_ids if s not in seen]
        seen.update(fresh)
        out[p.run_id] = sum(plan.stages[s].gpu_hours or 0.0 for s in fresh)
    return out


def used_by_run(storage: Storage) -> dict[str, float]:
    """run id -> GPU hours its result records (the same value on each of its metric rows)."""
    table = read_results(storage)
    return {run: float(hours or 0.0) for run, hours in
            zip(table.column("run_id").to_pylist(), table.column("gpu_hours").to_pylist())}


def budget(plan: Plan, storage: Storage) -> dict[str, dict]:
    """question -> runs, finished, planned_gpu_hours, used_gpu_hours, left_gpu_hours (the
    planned hours of its runs not finished yet)."""
    planned, used = planned_by_run(plan), used_by_run(storage)
    out: dict[str, dict] = defaultdict(lambda: {"runs": 0, "finished": 0, "planned_gpu_hours": 0.0,
                                                "used_gpu_hours": 0.0, "left_gpu_hours": 0.0})
    for p in plan.runs:
        row = out[p.run.question]
        row["runs"] += 1
        row["planned_gpu_hours"] += planned[p.run_id]
        if p.run_id in used:
            row["finished"] += 1
            row["used_gpu_hours"] += used[p.run_id]
        else:
            row["left_gpu_hours"] += planned[p.run_id]
    return {q: {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
            for q, row in sorted(out.items())}


def format_budget(rows: dict[str, dict]) -> list[str]:
    lines = [("GPU hours so far (planned = this dry run's estimate; used = what finished runs "
              "recorded):")]
    for question, r in rows.items():
        lines.append(f"  {question:8s} {r['finished']}/{r['runs']} runs finished: planned "
                     f"{r['planned_gpu_hours']:,.1f}, used {r['used_gpu_hours']:,.1f}, "
                     f"left {r['left_gpu_hours']:,.1f} (planned)")
    return lines
