"""One stage's fine-tuning as one Ray `TorchTrainer.fit()`: `fit_stage(FitConfig) -> FitOutcome`.

Each worker gets the whole dataset (not split) and keeps its rows by position, so a run that
is restarted (a worker died, `FailureConfig.max_failures`) or re-run with the same
`storage_path` + `name` resumes from its latest checkpoint at the same data position: Ray Train
V2 reloads the run's checkpoint manager snapshot from storage. Called by trainers/stages.py.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.fs
import ray.train
from ray.train.torch import TorchTrainer

from core.settings import TrainSettings
from trainers import loop
from trainers.backends import check_precision
from trainers.data.pipeline import data_config


@dataclass(frozen=True)
class FitConfig:
    model: str  # preset name, HF id, or the parent stage's local checkpoint dir
    tokenizer: str
    dataset: Any  # ray.data.Dataset with the pipeline's row columns, ordered by (epoch, position)
    settings: TrainSettings = field(default_factory=TrainSettings)
    workers: int = 2
    use_gpu: bool = False
    resources_per_worker: dict | None = None  # None: {"CPU": 0.5} on CPU, {"GPU": 1} on GPU
    storage_path: str = "./runs/ray"  # local path or s3:// / gs:// URI
    name: str = "stage"  # the stage id: a re-run with the same name resumes its checkpoints
    max_failures: int | None = None  # None: settings.max_failures
    rows_per_epoch: int | None = None  # None: counted from the dataset (one pass over it)
    checkpoints_to_keep: int = 2
    model_params: int = 0  # for MFU; 0: counted on the worker
    callbacks: tuple = ()  # ray.train UserCallbacks, e.g. the sweep's per-step loss forwarder


@dataclass(frozen=True)
class FitOutcome:
    path: str  # local dir of the final HF checkpoint (safetensors, config, tokenizer)
    metrics: dict
    loss_curve: list[float]
    tokens_seen: int
    tokens_per_s: float  # real (non-pad) tokens over training time, all workers
    wall_s: float  # the whole fit, start-up included
    steps: int


def default_resources(use_gpu: bool) -> dict:
    # Half a CPU per worker on CPU leaves Ray Data room to stream (a whole CPU each starves it
    # on a 2-core machine and the pipeline hangs).
    return {"GPU": 1} if use_gpu else {"CPU": 0.5}


def count_rows_per_epoch(dataset, epochs: int) -> int:
    total = dataset.count()
    if total % epochs:
        raise ValueError(f"dataset has {total} rows, not a multiple of epochs={epochs}: "
                         "expected every epoch laid out in full (pipeline.build_stage_dataset)")
    return total // epochs


def _storage(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def build_trainer(cfg: FitConfig):


    cfg.settings.grad_accum(cfg.workers)  # fail on the driver, before any worker starts
    if not cfg.use_gpu:
        # A clear SettingsError here rather than a failed (and retried) worker group: CPU
        # training runs on this machine's CPUs (the backends check again on each worker).
        check_precision(cfg.settings.resolved_precision(False), "cpu")
    rows = cfg.rows_per_epoch or count_rows_per_epoch(cfg.dataset, cfg.settings.epochs)
    job = loop.WorkerJob(model=cfg.model, tokenizer=cfg.tokenizer, settings=cfg.settings,
                         rows_per_epoch=rows, use_gpu=cfg.use_gpu, model_params=cfg.model_params)
    failures = cfg.settings.max_failures if cfg.max_failures is None else cfg.max_failures
    return TorchTrainer(
        # looked up now, not at import: tests/faults.py wraps it to kill a worker mid-stage
        loop.train_loop_per_worker,
        train_loop_config=job.to_dict(),
        scaling_config=ray.train.ScalingConfig(
            num_workers=cfg.workers, use_gpu=cfg.use_gpu,
            resources_per_worker=cfg.resources_per_worker or default_resources(cfg.use_gpu)),
        datasets={"train": cfg.dataset},
        dataset_config=data_config(),
        run_config=ray.train.RunConfig(
            name=cfg.name, storage_path=_storage(cfg.storage_path),
            failure_config=ray.train.FailureConfig(max_failures=failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=cfg.checkpoints_to_keep),
            callbacks=list(cfg.callbacks) or None),
    )


def local_dir(checkpoint) -> str:
    """The checkpoint as a local folder (downloaded when the storage is remote)."""
    if isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem):
        return checkpoint.path
    return checkpoint.to_directory(tempfile.mkdtemp(prefix="stage-final-"))


def fit_stage(cfg: FitConfig) -> FitOutcome:
    """Train one stage to its end (resuming a crashed run of the same name) and return where
    its final HF checkpoint is, with the loss curve and throughput."""
    trainer = build_trainer(cfg)
    t0 = time.perf_counter()
    result = trainer.fit()
    wall = time.perf_counter() - t0
    if result.error is not None:
        raise RuntimeError(f"stage {cfg.name} failed") from result.error
    if result.checkpoint is None:
        raise RuntimeError(f"stage {cfg.name} finished without a final checkpoint")
    path = local_dir(result.checkpoint)
    summary = json.loads(Path(path, "train_summary.json").read_text())
    return FitOutcome(path=path, metrics=dict(result.metrics or summary),
                      loss_curve=list(summary["loss_curve"]), tokens_seen=summary["tokens_seen"],
                      tokens_per_s=summary["tokens_per_s"], wall_s=wall, steps=summary["steps"])
