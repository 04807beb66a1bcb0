"""The Tune side of a sweep: one trial per pending run (sweep/trial.py) in a grid, at the
concurrency the cluster allows (sweep/concurrency.py), with a report that grows as runs finish,
and the outcome of each trial folded into the sweep's summary.
"""

from __future__ import annotations

import os

from sweep.concurrency import DRIVER_RESOURCE, DRIVER_SHARE, max_concurrent
from sweep.presets import Preset
from sweep.results import has_result
from sweep.trial import TrialJob, trial
from trainers.identity import content_hash
from trainers.storage import Storage


def tune_jobs(jobs: list[TrialJob], preset: Preset, storage: Storage, summary,
              grow_report: bool = True, judging=None) -> None:
    """Run `jobs` as Tune trials; `summary` (sweep.driver.SweepSummary) records each outcome.
    `judging` (sweep.judging.DriverJudging): judges each run as its trial completes."""
    import ray
    from ray import tune

    # Tune's new console output ignores CLIReporter; the classic table shows our columns.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    reporter = tune.CLIReporter(
        parameter_columns={"job/question": "question", "job/strategy": "strategy",
                           "job/amounts": "amounts"},
        metric_columns={"stage": "stage", "status": "status", "loss": "loss"},
        max_report_frequency=15)
    tuner = tune.Tuner(
        tune.with_resources(trial, {DRIVER_RESOURCE: DRIVER_SHARE}),
        param_space={"job": tune.grid_search([j.to_config() for j in jobs])},
        tune_config=tune.TuneConfig(
            max_concurrent_trials=max_concurrent(preset, {j.run.model for j in jobs},
                                                 ray.cluster_resources()),
            trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=f"sweep-{content_hash(sorted(j.run_id for j in jobs))[:12]}",
            storage_path=storage.uri_of("tune"), progress_reporter=reporter, verbose=1,
            callbacks=([judging.callback()] if judging else [])
            + ([report_callback(storage)] if grow_report else []),
            failure_config=tune.FailureConfig(max_failures=0)))
    for result in tuner.fit():
        record_outcome(result, storage, summary)


def record_outcome(result, storage: Storage, summary) -> None:
    run_id = result.config["job"]["run_id"]
    metrics = result.metrics or {}
    summary.stages_trained += int(metrics.get("stages_trained") or 0)
    summary.stages_reused += int(metrics.get("stages_reused") or 0)
    if result.error is None and has_result(storage, run_id):
        summary.finished.append(run_id)
    else:
        why = str(result.error or "no result file written").strip().splitlines()
        summary.failed[run_id] = why[-1][:300] if why else "unknown"


def report_callback(storage: Storage):
    """Rewrites the report each time a run finishes, so it grows during a long sweep."""
    from ray.tune import Callback

    from sweep.report import write_report

    class ReportOnFinish(Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            try:
                write_report(storage)
            except (OSError, ValueError, RuntimeError) as e:  # the sweep goes on regardless
                print(f"note: report not updated after {trial}: {e}")

    return ReportOnFinish()


def _trial_name(trial) -> str:
    return trial.config["job"]["run_id"]
