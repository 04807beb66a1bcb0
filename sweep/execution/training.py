"""A trial's training: its run's stages through trainers.stages.run_stages (each missing stage
one Ray Train `TorchTrainer.fit()`, a finished one reused), in a task outside the trial's
placement group, with stage events and per-step losses sent back to the trial.
"""

from __future__ import annotations

import dataclasses
import functools

import ray

from core.storage import Storage
from sweep.execution.job import TrialJob
from sweep.execution.progress import Progress, metrics_forwarder, run_reporting
from sweep.planning import plan as planning
from sweep.study.presets import source_specs, workers_for
from sweep.study.strategies import with_settings
from trainers.stages import run_stages


def train_outside_trial_group(job: TrialJob, progress: Progress) -> list:
    """The run's stages in a task outside the trial's placement group (`run_reporting`); stage
    events come back through the same queue as Train's per-step losses."""
    return run_reporting(_train_task, {}, job, progress.on_event,
                         lambda events: (metrics_forwarder(events),))


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
