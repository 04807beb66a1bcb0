"""The sweep: plan the runs, skip the finished ones, start or join Ray, hand the rest to Tune.

The path of one run reads top to bottom: this file (which runs are pending) -> sweep/execution/tuner.py
(one Tune trial each) -> sweep/execution/trial.py (a run: stages, evaluation, result) ->
sweep/execution/training.py (trainers.stages.run_stages: one Ray Train fit per missing stage) ->
trainers/loop.py (the worker loop); sweep/execution/evaluation.py scores the last stage. Names are content
hashes, so the same command again skips finished runs before any trial. With a judge, the
driver judges each run's stored MT-Bench answers itself (sweep/execution/judging.py): the key stays here.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray

from core.ids import content_hash
from core.storage import Storage
from sweep.execution.concurrency import DRIVER_RESOURCE, growth_capacity, read_cluster_config
from sweep.execution.eta import SweepWork
from sweep.execution.judging import DriverJudging
from sweep.execution.provenance import sweep_provenance
from sweep.execution.trial import TrialJob
from sweep.execution.tuner import tune_jobs
from sweep.planning import plan as planning
from sweep.planning.resolution import resolve_preset
from sweep.reporting.budget import write_planned
from sweep.reporting.results import has_result
from sweep.study.grid import Run
from sweep.study.presets import Preset, source_specs
from trainers.stages import read_manifest

REPO = Path(__file__).resolve().parents[1]

@dataclass
class SweepSummary:
    runs: int
    skipped: list[str] = field(default_factory=list)  # finished before: never launched
    finished: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    judged: list[str] = field(default_factory=list)  # MT-Bench judged by the driver now
    stages_trained: int = 0  # distinct stages completed now (count_stages, from storage)
    stages_reused: int = 0  # other uses of a stage by the runs that finished now
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def text(self) -> str:
        lines = [(f"{self.runs} runs: {len(self.skipped)} already finished, "
                  f"{len(self.finished)} finished now, {len(self.failed)} failed, "
                  f"{len(self.judged)} judged; stages trained "
                  f"{self.stages_trained}, reused {self.stages_reused}; {self.wall_s:.0f} s")]
        return "\n".join(lines + [f"  FAILED {rid}: {why}" for rid, why in self.failed.items()])


def init_ray(address: str | None, temp_dir: str | None,
             verbose: bool = False) -> tuple[bool, str | None]:
    """Connect to a cluster, or start a local Ray with the driver resource: (started, dashboard
    URL or None). Unless `verbose`, workers' logs (Train's per-step "Reporting training result",
    the placement-group cleaner's complaints, trials' prints) stay in Ray's log files instead of
    scrolling through the console; errors still reach the summary through Tune's results."""
    if ray.is_initialized():
        return False, None
    quiet = {"log_to_driver": verbose,
             "logging_level": logging.INFO if verbose else logging.WARNING}
    if address:
        ctx = ray.init(address=address, **quiet)  # the head declares train_driver (cluster.yaml)
    else:
        ctx = ray.init(resources={DRIVER_RESOURCE: 1.0}, _temp_dir=temp_dir,
                       # trials and workers import this project from the checkout
                       runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}}, **quiet)
    url = getattr(ctx, "dashboard_url", None)
    return True, (url if not url or "://" in url else f"http://{url}")


def pending_jobs(plan: planning.SweepPlan, preset: Preset, storage: Storage, summary: SweepSummary,
                 provenance: dict | None = None) -> list[TrialJob]:
    jobs = []
    summary.runs = len(plan.runs)
    for p in plan.runs:
        if has_result(storage, p.run_id):
            summary.skipped.append(p.run_id)
        else:
            jobs.append(TrialJob(p.run, p.run_id, p.stage_ids, preset, provenance))
    return jobs


def run_sweep(runs: list[Run], preset: Preset, *, address: str | None = None,
              ray_temp_dir: str | None = None, grow_report: bool = True, verbose: bool = False,
              mlflow_uri: str | None = None, cluster_config: str | None = None,
              judge=None) -> SweepSummary:
    """`verbose`: Ray's worker logs and Tune's status table instead of the sweep's own progress
    table (sweep/execution/console.py); `mlflow_uri`: also log each run to MLflow there;
    `cluster_config`: the launcher config whose growth sizes the fan-out; `judge`: a
    sweep.execution.judging.DriverJudge (config and key) or None: MT-Bench not judged."""
    t0 = time.time()
    storage = Storage(preset.storage)
    # Tune runs each trial in a working dir of its own: a relative "./runs" would put results there.
    preset = dataclasses.replace(preset, storage=storage.uri)
    # What the sources and models contain, once for every trial (a no-op when the command
    # resolved it already): stage ids hash it, so trials must not each look again.
    preset = resolve_preset(preset, storage=storage)
    summary = SweepSummary(runs=len(runs))
    plan = planning.build_plan(runs, preset)  # one entry per distinct run
    jobs = pending_jobs(plan, preset, storage, summary, sweep_provenance(preset))
    if jobs:  # what the report sets the runs' GPU hours against (sweep/reporting/budget.py)
        write_planned(storage, plan, _sweep_name(runs, preset))
    judging = DriverJudging(storage, judge) if judge is not None else None
    if jobs:
        source_specs(preset, storage)  # write built-in corpora once, before trials race for it
        started, dashboard = init_ray(address, ray_temp_dir, verbose)
        if dashboard:
            print(f"Ray dashboard: {dashboard}", flush=True)
        work = sweep_work(plan, jobs, preset, storage)
        try:
            tune_jobs(jobs, preset, storage, summary, grow_report, verbose=verbose,
                      mlflow_uri=mlflow_uri, capacity=cluster_capacity(address, cluster_config),
                      judging=judging, work=work)
        finally:
            if started:
                ray.shutdown()
        count_stages(summary, jobs, set(work.stage_tokens), storage)
    if judging is not None:
        judging.finish(summary.skipped + summary.finished, summary)
    summary.wall_s = time.time() - t0
    storage.write_json(f"sweeps/{_sweep_name(runs, preset)}.json",
                       {**dataclasses.asdict(summary), "ok": summary.ok})
    return summary


def sweep_work(plan: planning.SweepPlan, jobs: list[TrialJob], preset: Preset,
                storage: Storage) -> SweepWork:
    """What the pending runs still have to do, for the console's ETA: the planned tokens of
    their stages not yet in storage, and their eval items (a t-SNE run has none)."""
    needed = {sid for job in jobs for sid in job.stage_ids}
    todo = {sid: plan.stages[sid].tokens for sid in needed
            if read_manifest(storage, sid) is None}
    items = planning.eval_items(preset)
    return SweepWork(stage_tokens=todo,
                     run_stages={job.run_id: job.stage_ids for job in jobs},
                     run_items={job.run_id: {} if job.run.question == "tsne" else items
                                for job in jobs})


def count_stages(summary: SweepSummary, jobs: list[TrialJob], missing: set[str],
                 storage: Storage) -> None:
    """Stages trained now: those missing from storage when the sweep began that have a manifest
    now (storage, not trial reports: a report lost with a node, or a retried attempt that
    found its own stage done, would otherwise count it as reused). Reused: every other use of a
    stage by a run that finished now."""
    trained = {sid for sid in missing if read_manifest(storage, sid) is not None}
    finished = set(summary.finished)
    uses = [sid for job in jobs if job.run_id in finished for sid in job.stage_ids]
    summary.stages_trained = len(trained)
    summary.stages_reused = len(uses) - len(trained & set(uses))


def cluster_capacity(address: str | None, cluster_config: str | None) -> dict | None:
    """What the cluster can grow to, from its config (given, or the launcher's copy on the head
    of a cluster we joined); None for a local Ray or when no config is found."""
    if not (address or cluster_config):
        return None
    config, where = read_cluster_config(cluster_config)
    if config is None:
        return None
    capacity = growth_capacity(config)
    print(f"fan-out sized for the cluster {where} describes: up to "
          f"{capacity.get('GPU', 0):g} GPUs, {capacity.get('CPU', 0):g} CPUs")
    return capacity


def _sweep_name(runs, preset: Preset) -> str:
    questions = "+".join(sorted({r.question for r in runs})) or "empty"
    return f"{questions}-{preset.name}-{content_hash([r.label for r in runs])[:8]}"
