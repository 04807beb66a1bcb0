"""GPU hours planned against used, per question: the dry run's estimate of each question's runs
beside what the finished runs recorded (a result's `gpu_hours`: the stages it trained on the
run's GPUs plus its evaluation's), and the estimate of what is left (stages not yet trained).
A stage shared by several runs counts once, for the first run in plan order that needs it, so
the questions' planned hours add up to the plan's. Shown by every `--dry-run` once a sweep has
finished runs in its storage, and in the report: each sweep stores its plan's hours per run
(`plans/<sweep>.json`) before any trial starts, so the report compares without re-planning.
    python -m sweep.rq4 --preset paper --dry-run --storage s3://bucket/runs
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict

from core.storage import Storage
from sweep.planning.plan import SweepPlan
from sweep.reporting.results import read_results


def planned_by_run(plan: SweepPlan) -> dict[str, float]:
    """run id -> planned GPU hours of the stages first needed by that run."""
    seen: set[str] = set()
    out: dict[str, float] = {}
    for p in plan.runs:
        fresh = [s for s in p.stage_ids if s not in seen]
        seen.update(fresh)
        out[p.run_id] = sum(plan.stages[s].gpu_hours or 0.0 for s in fresh)
    return out


PLANS = "plans"


def write_planned(storage: Storage, plan: SweepPlan, name: str) -> None:
    """The plan's GPU hours per run (null on CPU presets), for the report to set beside what the
    runs used. One file per sweep command; a later sweep's estimate of a run wins."""
    hours = planned_by_run(plan) if plan.gpu_hours is not None else {}
    storage.write_json(f"{PLANS}/{name}.json", {
        "written_at": time.time(), "throughput": dataclasses.asdict(plan.throughput),
        "runs": {p.run_id: {"question": p.run.question,
                            "planned_gpu_hours": hours.get(p.run_id)} for p in plan.runs}})


def read_planned(storage: Storage) -> dict[str, dict]:
    """run id -> {"question", "planned_gpu_hours"} from every stored plan (newest wins)."""
    plans = [storage.read_json(f"{PLANS}/{name}") for name in sorted(storage.list(PLANS))
             if name.endswith(".json")]
    out: dict[str, dict] = {}
    for stored in sorted(plans, key=lambda p: p.get("written_at", 0)):
        out.update(stored["runs"])
    return out


def used_by_run(storage: Storage) -> dict[str, float]:
    """run id -> GPU hours its result records (the same value on each of its metric rows)."""
    table = read_results(storage)
    return {run: float(hours or 0.0) for run, hours in
            zip(table.column("run_id").to_pylist(), table.column("gpu_hours").to_pylist())}


def budget(plan: SweepPlan, storage: Storage) -> dict[str, dict]:
    """question -> runs, finished, planned_gpu_hours, used_gpu_hours, left_gpu_hours (the
    planned hours of its runs not finished yet)."""
    planned = planned_by_run(plan)
    return budget_rows({p.run_id: {"question": p.run.question,
                                   "planned_gpu_hours": planned[p.run_id]} for p in plan.runs},
                       used_by_run(storage))


def stored_budget(storage: Storage) -> dict[str, dict]:
    """`budget` from the plans the sweeps stored (empty when none planned GPU hours)."""
    planned = {r: p for r, p in read_planned(storage).items()
               if p.get("planned_gpu_hours") is not None}
    return budget_rows(planned, used_by_run(storage)) if planned else {}


def budget_rows(planned: dict[str, dict], used: dict[str, float]) -> dict[str, dict]:
    out: dict[str, dict] = defaultdict(lambda: {"runs": 0, "finished": 0, "planned_gpu_hours": 0.0,
                                                "used_gpu_hours": 0.0, "left_gpu_hours": 0.0})
    for run_id, p in planned.items():
        row, hours = out[p["question"]], p["planned_gpu_hours"] or 0.0
        row["runs"] += 1
        row["planned_gpu_hours"] += hours
        if run_id in used:
            row["finished"] += 1
            row["used_gpu_hours"] += used[run_id]
        else:
            row["left_gpu_hours"] += hours
    return {q: {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
            for q, row in sorted(out.items())}


def render_budget(rows: dict[str, dict]) -> str:
    """The report's section: one row per question (nothing for CPU-only sweeps)."""
    if not rows:
        return ""
    lines = [("GPU hours per question: planned (the sweep's estimate when it started), used "
              "(what finished runs recorded: their trained stages on the run's GPUs plus "
              "evaluation), left (planned, runs not finished):\n"),
             "| question | runs finished | planned | used | used / planned (finished runs) | left |",
             "|---|---|---|---|---|---|"]
    for question, r in rows.items():
        done_planned = r["planned_gpu_hours"] - r["left_gpu_hours"]
        ratio = f"{r['used_gpu_hours'] / done_planned:.2f}" if done_planned > 0 else "-"
        lines.append(f"| {question} | {r['finished']}/{r['runs']} | "
                     f"{r['planned_gpu_hours']:,.1f} | {r['used_gpu_hours']:,.1f} | {ratio} | "
                     f"{r['left_gpu_hours']:,.1f} |")
    return "\n".join(lines) + "\n"


def format_budget(rows: dict[str, dict]) -> list[str]:
    lines = [("GPU hours so far (planned = this dry run's estimate; used = what finished runs "
              "recorded):")]
    for question, r in rows.items():
        lines.append(f"  {question:8s} {r['finished']}/{r['runs']} runs finished: planned "
                     f"{r['planned_gpu_hours']:,.1f}, used {r['used_gpu_hours']:,.1f}, "
                     f"left {r['left_gpu_hours']:,.1f} (planned)")
    return lines
