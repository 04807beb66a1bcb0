"""The Tune side of a sweep: one trial per pending run (sweep/execution/trial.py) in a grid, at the
concurrency the cluster allows (sweep/execution/concurrency.py), with a report that grows as runs finish,
and the outcome of each trial folded into the sweep's summary.
"""

from __future__ import annotations

import dataclasses
import os

import ray
from ray import tune
from ray.tune import Callback

from core.ids import content_hash
from core.storage import Storage
from sweep.execution.concurrency import DRIVER_RESOURCE, DRIVER_SHARE, max_concurrent
from sweep.execution.console import console_callback
from sweep.execution.eta import SweepEta, SweepWork
from sweep.execution.trial import TrialJob, trial
from sweep.reporting.document import write_report
from sweep.reporting.results import has_result
from sweep.study.presets import Preset


def tune_jobs(jobs: list[TrialJob], preset: Preset, storage: Storage, summary,
              grow_report: bool = True, *, verbose: bool = False,
              mlflow_uri: str | None = None, capacity: dict | None = None,
              judging=None, work: SweepWork | None = None) -> None:
    """Run `jobs` as Tune trials; `summary` (sweep.execution.driver.SweepSummary) records each outcome.
    The console shows the sweep's own table (sweep/execution/console.py), or with `verbose` Tune's.
    `capacity`: what the cluster can grow to (sweep.execution.concurrency.growth_capacity), if known.
    `judging` (sweep.execution.judging.DriverJudging): judges each run as its trial completes.
    `work`: what the runs have left to do (sweep/execution/eta.py), for the console's ETA."""
    name = f"sweep-{content_hash(sorted(j.run_id for j in jobs))[:12]}"
    # The classic console engine: with verbose=0 it prints nothing (the new one still prints
    # its configuration box); with verbose=1 its table shows our CLIReporter columns.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    at_once = max_concurrent(preset, {j.run.model for j in jobs}, ray.cluster_resources(),
                             capacity)
    eta = SweepEta(dataclasses.replace(work, concurrency=at_once)) if work else None
    callbacks = [] if verbose else [console_callback(total=len(jobs), eta=eta)]
    if judging is not None:  # before the report: a run's MT-Bench is judged, then reported
        callbacks.append(judging.callback())
    if grow_report:
        callbacks.append(report_callback(storage))
    if mlflow_uri:
        callbacks.append(mlflow_callback(mlflow_uri, preset))
    tuner = tune.Tuner(
        tune.with_resources(trial, {DRIVER_RESOURCE: DRIVER_SHARE}),
        param_space={"job": tune.grid_search([j.to_config() for j in jobs])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=at_once,
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=name, storage_path=storage.uri_of("tune"),
            progress_reporter=_tune_table() if verbose else None, verbose=1 if verbose else 0,
            callbacks=callbacks or None,
            failure_config=tune.FailureConfig(max_failures=preset.hardware.trial_retries)))
    for result in tuner.fit():
        record_outcome(result, storage, summary)


def _tune_table():
    return tune.CLIReporter(
        parameter_columns={"job/question": "question", "job/strategy": "strategy",
                           "job/amounts": "amounts"},
        metric_columns={"stage": "stage", "status": "status", "step": "step",
                        "total_steps": "of", "loss": "loss"},
        max_report_frequency=15)


def mlflow_callback(uri: str, preset: Preset):
    """One MLflow run per trial at `uri` (a tracking server or file://DIR/mlruns): the trial's
    config (run, preset, provenance) as params, everything it reports as metrics."""
    from ray.air.integrations.mlflow import (
        MLflowLoggerCallback,  # lazy: optional dependency (mlflow)
    )

    if "://" not in uri or uri.startswith("file:"):
        # MLflow 3 refuses its file store ("maintenance mode") unless told; a local folder is
        # what a laptop or a test has, so asking for one by URI is consent enough.
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=f"dmt-sweep-{preset.name}",
                                save_artifact=False)


def record_outcome(result, storage: Storage, summary) -> None:
    run_id = result.config["job"]["run_id"]
    if result.error is None and has_result(storage, run_id):
        summary.finished.append(run_id)
    else:
        why = str(result.error or "no result file written").strip().splitlines()
        summary.failed[run_id] = why[-1][:300] if why else "unknown"


def report_callback(storage: Storage):
    """Rewrites the report each time a run finishes, so it grows during a long sweep."""

    class ReportOnFinish(Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            try:
                write_report(storage)
            except (OSError, ValueError, RuntimeError) as e:  # the sweep goes on regardless
                print(f"note: report not updated after {trial}: {e}")

    return ReportOnFinish()


def _trial_name(trial) -> str:
    return trial.config["job"]["run_id"]
