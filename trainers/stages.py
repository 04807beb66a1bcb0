"""Stages trained once: a strategy's stages, each found in run storage by its content id or
trained there (one `fit_stage` per stage), whoever else needs it at the same time.

`stages/<stage_id>/` holds the final weights in HF format plus `manifest.json`, written last:
its presence means the stage is complete. `stages/<stage_id>/.lock` is a `Lease` so that two
processes missing the same stage train it once. Run it through `python -m sweep.finetune`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from core.contracts import StageEvent, StageManifest
from core.ids import fingerprint_sources, root_id, stage_ids
from core.settings import TrainSettings
from core.storage import Lease, Storage
from trainers.data.recipe import format_recipe
from trainers.stage_manifest import build_manifest

MANIFEST = "manifest.json"
LOCK = ".lock"


def stage_rel(sid: str) -> str:
    return f"stages/{sid}"


@dataclass(frozen=True)
class ChainedStage:
    """One stage with its identity resolved; no training involved (dry runs use this)."""

    index: int
    stage_id: str
    parent_id: str
    recipe: tuple
    settings: TrainSettings


@dataclass(frozen=True)
class StageResult:
    stage_id: str
    path: str  # the stage folder: a local path, or a URI on remote storage
    trained: bool  # False: it existed (or another process trained it while we waited)
    manifest: StageManifest


def resolve_settings(stage: Any, settings: TrainSettings | None) -> TrainSettings:
    """A stage's own settings win (presets attach them); then the caller's; then the paper's."""
    own = getattr(stage, "settings", None)
    chosen = own if own is not None else settings
    if chosen is None:
        return TrainSettings()
    if isinstance(chosen, Mapping):
        return TrainSettings.from_dict(dict(chosen))
    return chosen


def plan_stages(model: str, stages: Sequence[Any], specs: Mapping[str, Any], *,
                settings: TrainSettings | None = None, seed: int = 0,
                sources_fp: Mapping[str, Any] | None = None,
                model_content: str | None = None) -> list[ChainedStage]:
    """Chain the stage ids of a strategy from `model`. `sources_fp` overrides what identifies the
    sources (default: the specs' location/format/content...); `model_content` is the model's
    content identity (core.content.model_content), when resolved; cheap, no torch or ray."""
    if not stages:
        raise ValueError("a strategy needs at least one stage")
    recipes = [tuple(getattr(stage, "recipe", stage)) for stage in stages]
    for index, recipe in enumerate(recipes):
        missing = sorted({s for s, _ in recipe} - set(specs))
        if missing:
            raise ValueError(f"stage {index} ({format_recipe(recipe)}) reads sources {missing} "
                             f"that are not given; known: {sorted(specs)}")
    chosen = [resolve_settings(stage, settings) for stage in stages]
    fp = fingerprint_sources(sources_fp if sources_fp is not None else specs)
    ids = stage_ids(model, recipes, chosen, seed, fp, model_content)
    parents = [root_id(model, model_content), *ids[:-1]]
    return [ChainedStage(i, sid, parent, recipe, s)
            for i, (sid, parent, recipe, s) in enumerate(zip(ids, parents, recipes, chosen))]


def read_manifest(storage: Storage, sid: str) -> StageManifest | None:
    """The manifest of a complete stage, None when the stage is missing or unfinished."""
    try:
        return StageManifest.from_dict(storage.read_json(f"{stage_rel(sid)}/{MANIFEST}"))
    except FileNotFoundError:
        return None


def missing_stages(model: str, stages: Sequence[Any], specs: Mapping[str, Any],
                   storage: Storage | str, **plan_options) -> list[ChainedStage]:
    """The planned stages that have no manifest yet (what a run would train, or wait for)."""
    storage = storage if isinstance(storage, Storage) else Storage(storage)
    plan = plan_stages(model, stages, specs, **plan_options)
    return [p for p in plan if read_manifest(storage, p.stage_id) is None]


@dataclass(frozen=True)
class StageTraining:
    """How to train a missing stage: everything run_stages passes down, in one place."""

    model: str
    specs: Mapping[str, Any]
    storage: Storage
    seed: int
    workers: int
    use_gpu: bool
    max_failures: int
    resources_per_worker: Mapping[str, float] | None
    fit: Callable
    build_dataset: Callable
    on_event: Callable[[StageEvent], None]


def run_stages(model: str, stages: Sequence[Any], specs: Mapping[str, Any],
               storage: Storage | str, *, settings: TrainSettings | None = None, seed: int = 0,
               workers: int = 1, use_gpu: bool = False, max_failures: int = 1,
               on_event: Callable[[StageEvent], None] | None = None,
               fit: Callable | None = None,
               build_dataset: Callable | None = None,
               resources_per_worker: Mapping[str, float] | None = None,
               sources_fp: Mapping[str, Any] | None = None, model_content: str | None = None,
               lock_ttl_s: float = 120.0, poll_s: float = 2.0) -> list[StageResult]:
    """Every stage of a strategy, in order: reused when its manifest exists, else trained once
    (under a lease) from its parent's weights, or from `model` for the first stage.

    `fit` defaults to trainers.fit.fit_stage and `build_dataset` to
    trainers.data.pipeline.build_stage_dataset (both looked up at call time, so tests may swap them).
    `on_event(StageEvent)` hears each stage's state changes (core/contracts.py), so a sweep
    driver can report progress to Tune."""
    if fit is None:
        from trainers import fit as fit_module  # lazy: light command (dry run: no ray)

        fit = fit_module.fit_stage
    if build_dataset is None:
        from trainers.data import pipeline  # lazy: light command (dry run: no ray)

        build_dataset = pipeline.build_stage_dataset
    storage = storage if isinstance(storage, Storage) else Storage(storage)
    plan = plan_stages(model, stages, specs, settings=settings, seed=seed, sources_fp=sources_fp,
                       model_content=model_content)
    ex = StageTraining(model, specs, storage, seed, workers, use_gpu, max_failures,
                   resources_per_worker, fit, build_dataset, on_event or (lambda event: None))
    fp = fingerprint_sources(sources_fp if sources_fp is not None else specs)
    results: list[StageResult] = []
    for planned in plan:
        parent = results[-1] if results else None
        results.append(obtain_stage(planned, len(plan), parent, fp, ex, lock_ttl_s, poll_s))
    return results


def obtain_stage(planned: ChainedStage, of: int, parent: StageResult | None, sources_fp: dict,
                 ex: StageTraining, lock_ttl_s: float, poll_s: float) -> StageResult:
    """Reuse, wait for, or train one stage. Whoever holds the lease trains; the others poll
    until the manifest appears, or take over the lease if the holder dies or gives up."""
    rel = stage_rel(planned.stage_id)
    path = ex.storage.uri_of(rel)

    def emit(status: str, **extra) -> None:
        ex.on_event(StageEvent(status, planned.index, of, planned.stage_id,
                               format_recipe(planned.recipe), path, **extra))

    lease = Lease(ex.storage, f"{rel}/{LOCK}", ttl_s=lock_ttl_s)
    waiting_since = None
    while True:
        manifest = read_manifest(ex.storage, planned.stage_id)
        if manifest is None and lease.try_acquire():
            try:
                # Re-check under the lease: it may have been finished since the first look.
                manifest = read_manifest(ex.storage, planned.stage_id)
                if manifest is None:
                    emit("training")
                    manifest = train_missing_stage(planned, parent, sources_fp, ex)
                    emit("trained", wall_s=manifest.stage_wall_s)
                    return StageResult(planned.stage_id, path, True, manifest)
            finally:
                lease.release()
        if manifest is not None:
            emit("reused", **({"waited_s": time.time() - waiting_since} if waiting_since else {}))
            return StageResult(planned.stage_id, path, False, manifest)
        if waiting_since is None:
            waiting_since = time.time()
            emit("waiting", holder=lease.holder())
        time.sleep(poll_s)


def parent_source(planned: ChainedStage, parent: StageResult | None, ex: StageTraining) -> str:
    """What the stage starts from: the base model, or the parent stage's folder in storage (a
    URI on remote storage: each Train worker copies it into its own node's cache, so workers on
    other nodes than this process find it too)."""
    if parent is None:
        return ex.model
    return ex.storage.uri_of(stage_rel(parent.stage_id))


def train_missing_stage(planned: ChainedStage, parent: StageResult | None, sources_fp: dict,
                ex: StageTraining) -> StageManifest:
    """One fit of one stage; the weights are copied in first and the manifest written last."""
    from trainers.fit import FitConfig  # lazy: light command (dry run: no ray)

    start = time.time()
    settings = planned.settings
    dataset, report = ex.build_dataset(
        planned.recipe, ex.specs, ex.model, seed=ex.seed, epochs=settings.epochs,
        max_len=settings.max_len, overlong=settings.overlong, template=settings.template)
    start_from = parent_source(planned, parent, ex)
    outcome = ex.fit(FitConfig(
        model=start_from, tokenizer=ex.model, dataset=dataset, settings=settings,
        workers=ex.workers, use_gpu=ex.use_gpu,
        resources_per_worker=dict(ex.resources_per_worker or {}) or None,
        # Named by the stage id: a stage whose process crashed resumes from its last
        # mid-stage checkpoint when it is trained again.
        storage_path=ex.storage.uri_of("ray"), name=planned.stage_id,
        max_failures=ex.max_failures))
    rel = stage_rel(planned.stage_id)
    copy_checkpoint(outcome.path, ex.storage, rel)
    manifest = build_manifest(planned, start_from, sources_fp, report, outcome, ex.model,
                              ex.seed, ex.workers, ex.use_gpu,
                              stage_wall_s=round(time.time() - start, 3))
    ex.storage.write_json(f"{rel}/{MANIFEST}", manifest.to_dict())
    _remove_run_dir(ex.storage, planned.stage_id)
    return manifest


def copy_checkpoint(checkpoint: str | Path, storage: Storage, rel: str) -> None:
    """Copy the final HF checkpoint (a local folder, or a URI when Ray stores remotely)."""
    text = str(checkpoint)
    if "://" not in text:
        storage.upload_dir(text, rel)
        return
    fs, src = pafs.FileSystem.from_uri(text)
    storage.fs.create_dir(storage.path(rel), recursive=True)
    pafs.copy_files(src, storage.path(rel), source_filesystem=fs,
                    destination_filesystem=storage.fs)


def _remove_run_dir(storage: Storage, sid: str) -> None:
    """Mid-stage checkpoints only serve a crashed stage; once complete they are dead weight."""
    try:
        storage.delete_dir(f"ray/{sid}")
    except OSError:
        pass  # best effort: a leftover folder costs disk, not correctness
