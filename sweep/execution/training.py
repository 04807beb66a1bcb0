"""A trial's training: its run's stages through trainers.stages.run_stages (each missing stage
one Ray Train `TorchTrainer.fit()`, a finished one reused), in a task outside the trial's
placement group, with stage events and per-step losses sent back to the trial.
"""

from __future__ import annotations

import dataclasses
import functools

import ray
from ray.util.queue import Empty, Queue

from core.storage import Storage
from sweep.execution.job import TrialJob
from sweep.execution.progress import Progress, metrics_forwarder
from sweep.planning import plan as planning
from sweep.study.presets import source_specs, workers_for
from sweep.study.strategies import with_settings
from trainers.stages import run_stages


def train_outside_trial_group(job: TrialJob, progress: Progress) -> list:
    """Run the stages in a zero-CPU task scheduled outside the trial's placement group.

    Tune captures a trial's child tasks into its placement group, which holds only
    `train_driver`: Ray Data's tasks (CPU 1) then cannot be scheduled at all. A task with an
    explicit "DEFAULT" strategy is not captured, nor are its children. Stage events come back
    through the same queue as Train's per-step metrics (loss), which the trial reports to Tune."""

    events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": "DEFAULT"})
    task = ray.remote(_train_task).options(num_cpus=0, scheduling_strategy="DEFAULT")
    ref = task.remote(job, events, metrics_forwarder(events))
    while True:
        done, _ = ray.wait([ref], timeout=1.0)
        while True:
            try:
                progress.on_event(events.get_nowait())
            except Empty:
                break
        if done:
            return ray.get(ref)


def _train_task(job: TrialJob, events, callback) -> list:
    # Ray Data's progress bars would scroll through Tune's table; stage events say enough.
    ray.data.DataContext.get_current().enable_progress_bars = False
    return train_run(job, Storage(job.preset.storage), events.put, callback)


def train_run(job: TrialJob, storage: Storage, on_event, callback=None) -> list:
    """The run's stages in order (trainers.stages.StageResult each); none for a base run."""
    if not job.run.stages:
        return []  # the base model
    preset, model = job.preset, job.run.model
    settings, data_seed = planning.seeded(job.run, preset)
    hw = preset.hardware
    results = run_stages(
        model, with_settings(job.run.stages, settings), source_specs(preset, storage), storage,
        settings=settings, seed=data_seed, workers=workers_for(preset, model),
        use_gpu=hw.use_gpu, on_event=on_event, max_failures=max(1, settings.max_failures),
        fit=functools.partial(fit_with_callbacks, callbacks=[callback] if callback else []),
        resources_per_worker=hw.worker_resources(),
        sources_fp=planning.sources_fingerprint(preset),
        model_content=planning.resolved_model_content(preset, model))
    ids = tuple(r.stage_id for r in results)
    if ids != job.stage_ids:  # the plan and the trainer must name stages alike
        raise RuntimeError(f"run {job.run_id}: planned stages {job.stage_ids}, trained {ids}")
    return results


def fit_with_callbacks(cfg, callbacks=()):
    """trainers.fit.fit_stage, with Train's per-step metrics (loss) forwarded to the trial."""
    from trainers import fit  # lazy: Ray worker start-up (torch in the training task only)

    if callbacks:
        cfg = dataclasses.replace(cfg, callbacks=(*cfg.callbacks, *callbacks))
    return fit.fit_stage(cfg)
