"""One Tune trial = one run: its stages (sweep/execution/training.py), then its evaluation
(sweep/execution/evaluation.py), then its result file with what it cost.

`TrialJob` (sweep/execution/job.py) is the trial's whole input, carried through Tune's param
space as plain data, rebuilt once on the trial's first line and handed down as an object. Same run, same content-hash names: a finished run is never
launched again (sweep/execution/driver.py checks before any trial starts).
"""

from __future__ import annotations

import time

from core.storage import Storage
from sweep.execution.evaluation import evaluate_outside_trial_group
from sweep.execution.job import TrialJob
from sweep.execution.progress import Progress
from sweep.execution.training import train_outside_trial_group
from sweep.reporting.results import RunCost, rows_for, write_result
from sweep.study.presets import gpus_per_run


def trial(config: dict) -> None:
    """One run: its stages, then its evaluation, then its result file."""
    job = TrialJob.from_config(config["job"])
    progress = Progress(len(job.run.stages))
    progress.report()
    t0 = time.time()
    stages = train_outside_trial_group(job, progress)
    t_eval = time.time()
    measurements = evaluate_outside_trial_group(job, stages[-1] if stages else None, progress)
    cost = run_cost(job, stages, wall_s=time.time() - t0, eval_s=time.time() - t_eval)
    write_result(Storage(job.preset.storage), job.run_id,
                 rows_for(job.run, job.run_id, job.preset.name, job.stage_ids, measurements, cost,
                          job.provenance, proxy=job.preset.proxy))
    progress.status = "done"
    progress.report(wall_hours=cost.wall_hours)


def run_cost(job: TrialJob, stages: list, *, wall_s: float, eval_s: float) -> RunCost:
    """GPU time this run used itself: its trained stages on the run's GPUs (reused stages were
    paid for by the run that trained them), plus its evaluation's GPUs."""
    trained = [s for s in stages if s.trained]
    hw = job.preset.hardware
    train_h = sum(s.manifest.stage_wall_s for s in trained) / 3600
    gpu_h = train_h * gpus_per_run(job.preset, job.run.model) + eval_s / 3600 * (
        hw.eval_gpus if hw.use_gpu else 0)
    return RunCost(tokens_trained=sum(s.manifest.tokens_seen for s in trained),
                   tokens_in_stages=sum(s.manifest.tokens_seen for s in stages),
                   wall_hours=wall_s / 3600, gpu_hours=gpu_h)
