"""MT-Bench judged in the sweep's driver: the only process that holds the judge's key.

Trials may run on any node and see only plain data (Tune's param space, Ray's runtime_env: both
shown in the dashboard), so they generate MT-Bench answers without a judge and store them
(evals/<run_id>/mtbench_answers.jsonl). When a trial completes, a Tune callback (run in the
driver) hands its run to a background thread here, which judges the stored answers with the key,
writes the judgments beside them, and updates the run's per-item and result rows (mtbench/mean
with n, interval, judged=True and the judge's snapshot). After the sweep, `finish` also judges
runs an earlier sweep or a failed judging left unjudged.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ray.tune import Callback

from core.storage import Storage
from evals import mtbench
from evals.judge import JudgeConfig, JudgeError
from sweep.reporting.results import (
    has_result,
    item_rows,
    measurements_of,
    read_items,
    read_result,
    write_items,
    write_result,
)

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
METRIC = "mtbench/mean"


@dataclass(frozen=True)
class DriverJudge:
    """The judge and its key, in the driver's memory only: a pickled copy carries no key."""
    config: JudgeConfig
    api_key: str | None = field(default=None, repr=False)

    def __reduce__(self):
        return DriverJudge, (self.config, None)


def driver_judge(evaluation, key_env: str | None = None) -> DriverJudge | None:
    """The preset's judge with its key taken out of this process's environment (OPENAI_API_KEY
    or `key_env`), or None without a judge. The variable is removed from the environment
    either way, so nothing this process starts (local Ray, sandboxes) inherits it."""
    name = key_env or DEFAULT_KEY_ENV
    key = os.environ.pop(name, None)
    if not (evaluation.judge_url and evaluation.judge_model):
        return None
    if key_env and not key:
        raise SystemExit(f"--judge-key-env {key_env}: that variable is not set")
    config = JudgeConfig(evaluation.judge_url, evaluation.judge_model, api_key_env=name)
    return DriverJudge(config, key)  # no key and the default name: a local server needs none


def judge_run(storage: Storage, run_id: str, judge: DriverJudge) -> bool:
    """Judge one run's stored MT-Bench answers and update its rows. False where there is
    nothing to judge (no MT-Bench row, or judged already)."""
    rows = read_result(storage, run_id)
    row = next((r for r in rows if r["metric"] == METRIC), None)
    if row is None or row["judged"]:
        return False
    answers = _read_jsonl(storage, f"evals/{run_id}/mtbench_answers.jsonl")
    data = mtbench.load_mtbench(reference_model=mtbench.MTBench().reference_model)
    work = Path(tempfile.mkdtemp(prefix="judge-"))
    try:
        result = mtbench.judge_recorded(answers, data, judge.config, work,
                                        cache_dir=_cache_dir(storage), api_key=judge.api_key)
        rel = f"evals/{run_id}/mtbench_judgments.jsonl"
        storage.write_bytes(rel, (work / "mtbench_judgments.jsonl").read_bytes())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"eval": "mtbench", **result, "judgments": storage.uri_of(rel)}
    storage.write_json(f"evals/{run_id}/mtbench_judged.json",
                       {k: v for k, v in result.items() if k != "items"})
    found = [m for m in measurements_of({"mtbench": result}) if m.metric == METRIC]
    if not found:
        raise JudgeError(f"run {run_id}: no MT-Bench judgment parsed ({result['counts']})")
    m = found[0]
    items = read_items(storage, run_id) if storage.exists(f"items/{run_id}.parquet") else {}
    items.pop(METRIC, None)
    old = [{"run_id": run_id, "metric": k, "item": i, "value": v}
           for k, values in items.items() for i, v in values.items()]
    # items first: the result row is what says "judged", so it goes last
    write_items(storage, run_id, old + item_rows(run_id, {"mtbench": result}))
    judged = {**row, "value": m.value, "judged": True, "n": m.n, "ci_low": m.ci_low,
              "ci_high": m.ci_high, "judge_snapshot": m.judge_snapshot}
    write_result(storage, run_id, [judged if r is row else r for r in rows])
    return True


class DriverJudging:
    """Runs `judge_run` in one background thread of the driver, so Tune keeps scheduling
    trials while the judge answers; `callback()` feeds it as trials complete."""

    def __init__(self, storage: Storage, judge: DriverJudge):
        self.storage = storage
        self.judge = judge
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge")
        self._futures: dict[str, Future] = {}

    def submit(self, run_id: str) -> None:
        if run_id not in self._futures and has_result(self.storage, run_id):
            self._futures[run_id] = self._pool.submit(judge_run, self.storage, run_id,
                                                      self.judge)

    def finish(self, run_ids, summary) -> None:
        """Judge what is left of `run_ids`, wait for all, and record it in `summary`."""
        for run_id in run_ids:
            self.submit(run_id)
        for run_id, future in self._futures.items():
            try:
                if future.result():
                    summary.judged.append(run_id)
            except (JudgeError, OSError, ValueError) as e:
                summary.failed[run_id] = f"judging: {str(e).strip()[-300:]}"
        self._pool.shutdown()

    def callback(self):
        judging = self

        class JudgeOnFinish(Callback):
            def on_trial_complete(self, iteration, trials, trial, **info):
                judging.submit(trial.config["job"]["run_id"])

            def __reduce__(self):
                # Tune pickles its callbacks into tuner.pkl in the storage: a bare one goes
                return Callback, ()

        return JudgeOnFinish()


def _read_jsonl(storage: Storage, rel: str) -> list[dict]:
    if not storage.exists(rel):
        raise FileNotFoundError(f"{storage.uri_of(rel)}: no MT-Bench answers to judge")
    with storage.fs.open_input_stream(storage.path(rel)) as f:
        text = f.read().decode("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _cache_dir(storage: Storage) -> Path:
    """The judgments cache: with the storage when local, else this machine's storage cache."""
    path = storage.local_path("judge_cache") if storage.is_local else \
        storage.cache_dir() / "judge_cache"
    path.mkdir(parents=True, exist_ok=True)
    return path
