"""End to end on a local Ray: `python -m sweep.rq2 --preset smoke` (one fraction: the base model,
three single-source runs and their mix) killed with SIGKILL once its first run has finished, run again to completion, then run a
third time. Nothing finished is lost or retrained (checked on the stage manifests and result
files, not on timings), and the results table and the report are written."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from paths import REPO

from sweep.cli import parse_fractions
from sweep.planning.plan import build_plan
from sweep.planning.resolution import resolve_preset
from sweep.reporting.results import read_results
from sweep.study import grid, presets

FRACTIONS = "1/64"


def _command(ray_dir: str) -> list[str]:
    # A relative storage, as users type it: Tune runs each trial in a working dir of its own,
    # and every file must still land under the folder the command was started in.
    return [sys.executable, "-m", "sweep.rq2", "--preset", "smoke", "--fractions", FRACTIONS,
            "--storage", "runs", "--ray-temp-dir", ray_dir]


def _env() -> dict:
    return {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}


def _manifests(storage: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in storage.glob("stages/*/manifest.json")}


def _results(storage: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in storage.glob("results/*.parquet")}


def _kill_after_first_result(cmd: list[str], storage: Path, timeout_s: float) -> None:
    """Start the sweep in its own process group; SIGKILL the whole group (driver, Ray and its
    workers) as soon as one run's result file exists."""
    proc = subprocess.Popen(cmd, cwd=storage.parent, env=_env(), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout_s
    try:
        while time.time() < deadline and proc.poll() is None and not _results(storage):
            time.sleep(0.5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _mlflow_runs(store: Path) -> list[dict]:
    """{"params", "metrics"} of each MLflow run in a local file store."""
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses it otherwise
    client = MlflowClient(tracking_uri=store.as_uri())
    experiments = client.search_experiments()
    runs = client.search_runs([e.experiment_id for e in experiments]) if experiments else []
    return [{"params": r.data.params, "metrics": r.data.metrics} for r in runs]


def _run(cmd: list[str], cwd: Path) -> str:
    out = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900,
                         check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_rq2_smoke_survives_sigkill_and_resumes_without_retraining(tmp_path):
    storage = tmp_path / "runs"
    ray_dir = tempfile.mkdtemp(prefix="ray-h5-", dir="/tmp")  # short: Ray's socket paths
    cmd = _command(ray_dir)
    preset = resolve_preset(presets.smoke())  # as the sweep resolves it: the same ids
    fractions = parse_fractions(FRACTIONS)
    plan = build_plan(grid.build_grid("rq2", preset.models, fractions), preset)
    try:
        _kill_after_first_result(cmd, storage, timeout_s=600)
        survived = _results(storage)
        assert len(survived) >= 1, "the first run never finished"
        before = _manifests(storage)

        mlruns = tmp_path / "mlruns"
        out = _run(cmd + ["--mlflow", mlruns.as_uri()], tmp_path)
        assert f"{len(survived)} already finished" in out
        # The console: the sweep's own table, not Train's per-step lines or the cleaner's noise.
        assert "== sweep progress" in out and "step/total" in out
        assert "Reporting training result" not in out
        assert "Failed to query Ray Train Controller" not in out
        logged = _mlflow_runs(mlruns)  # one MLflow run per trial of this sweep
        launched = {p.run_id for p in plan.runs} - {n.removesuffix(".parquet") for n in survived}
        assert sorted(r["params"]["job/run_id"] for r in logged) == sorted(launched)
        assert all("stage_index" in r["metrics"] for r in logged)
        assert all(isinstance(v, float) for r in logged for v in r["metrics"].values())
        trained = [r for r in logged if r["params"]["job/question"] != "base"]
        assert trained and all(r["metrics"]["total_steps"] >= r["metrics"]["step"] >= 1
                               and "loss" in r["metrics"] for r in trained)
        after = _manifests(storage)
        for sid, mtime in before.items():  # a stage finished before the kill is not retrained
            assert after[sid] == mtime, sid
        assert set(after) == {s for p in plan.runs for s in p.stage_ids}
        results = _results(storage)
        assert {f"{p.run_id}.parquet" for p in plan.runs} == set(results)
        for name, mtime in survived.items():  # nor is a finished result redone
            assert results[name] == mtime

        table = read_results(storage).to_pylist()
        metrics = {(r["run_id"], r["metric"]) for r in table}
        for p in plan.runs:
            for m in ("gsm8k/flexible", "gsm8k/strict", "gsm8k/ref_logprob", "humaneval/pass@1",
                      "humaneval/ref_logprob", "general/loss", "mtbench/mean"):
                assert (p.run_id, m) in metrics
        mt = [r for r in table if r["metric"] == "mtbench/mean"]
        assert all(r["value"] is None and not r["judged"] for r in mt)  # no judge configured
        measured = [r for r in table if r["value"] is not None]
        assert all(r["n"] > 0 and r["ci_low"] <= r["value"] <= r["ci_high"] for r in measured)
        assert {p.run.question for p in plan.runs} == {"base", "rq1", "rq2"}
        assert {f"{p.run_id}.parquet" for p in plan.runs} == {
            p.name for p in storage.glob("items/*.parquet")}  # per-item outcomes in storage
        report = storage / "report"
        text = (report / "report.md").read_text()
        assert "| base model |" in text and "| mixed, f=1/64 |" in text
        assert (report / "fig3_rq2_mixed_vs_single.png").stat().st_size > 0

        out = _run(cmd, tmp_path)  # everything done: no trial starts, nothing is touched
        assert f"{len(plan.runs)} already finished, 0 finished now" in out
        assert _manifests(storage) == after and _results(storage) == results
        summaries = [json.loads(p.read_text()) for p in storage.glob("sweeps/*.json")]
        assert summaries and summaries[0]["stages_trained"] == 0
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)


# ---- fast checks of the driver's pieces (no Ray) ---------------------------------------------

def test_measurements_in_paper_units_and_not_judged_is_null():
    from sweep.reporting.results import measurements_of

    def items(metric, values):
        return [{"item": f"q{i}", "metric": metric, "value": v} for i, v in enumerate(values)]

    out = {"gsm8k": {"metrics": {"accuracy_strict": 0.25, "accuracy_flexible": 0.5},
                     "items": items("accuracy_strict", [1, 0, 0, 0])
                     + items("accuracy_flexible", [1, 1, 0, 0])},
           "humaneval": {"metrics": {"pass@1": 0.125, "problems": 8, "isolation": ["bwrap"]},
                         "items": items("pass@1", [1, 0, 0, 0, 0, 0, 0, 0])},
           "mtbench": {"judged": False, "metrics": {"score": None}}}
    got = {m.metric: (m.value, m.judged, m.n) for m in measurements_of(out)}
    assert got == {"gsm8k/strict": (25.0, True, 4), "gsm8k/flexible": (50.0, True, 4),
                   "humaneval/pass@1": (12.5, True, 8), "mtbench/mean": (None, False, None)}
    judged = {"mtbench": {"judged": True, "metrics": {"score": 6.5, "score_std": 0.1,
                                                      "category/math": 4.0},
                          "items": items("score", [6.0, 7.0])}}
    (mean,) = measurements_of(judged)  # per-category grades stay in the eval's records
    assert (mean.metric, mean.value, mean.n) == ("mtbench/mean", 6.5, 2)
    assert mean.ci_low == pytest.approx(6.0) and mean.ci_high == pytest.approx(7.0)


def test_trial_job_round_trips_and_concurrency_fits_the_cluster():
    from sweep.execution.concurrency import max_concurrent
    from sweep.execution.trial import TrialJob

    preset = presets.paper()
    p = build_plan(grid.build_grid("rq4", ["llama_33b"]), preset).runs[-1]
    job = TrialJob(p.run, p.run_id, p.stage_ids, preset)
    config = json.loads(json.dumps(job.to_config()))  # what Tune stores is plain data
    assert TrialJob.from_config(config) == job and config["amounts"] == "k=1/256"
    assert max_concurrent(preset, {"llama_33b"}, {"GPU": 32}) == 2  # 16 GPUs per 33B run
    assert max_concurrent(preset, {"llama_7b"}, {"GPU": 32}) == 4
    local = dataclasses.replace(presets.local(), max_concurrent=None)
    assert max_concurrent(local, {"smollm2_135m"}, {"CPU": 2}) == 1  # 2 workers + the trial
    assert max_concurrent(local, {"smollm2_135m"}, {"CPU": 16}) == 5


def test_fan_out_follows_what_the_autoscaling_cluster_can_grow_to():
    """cluster.yaml starts with no GPU worker (min_workers 0) and grows to 4 x 8 A100s: the
    sweep sizes its fan-out for 32 GPUs, not for the 0 it sees at start."""
    import yaml

    from sweep.execution.concurrency import growth_capacity, max_concurrent

    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    capacity = growth_capacity(config)
    assert capacity["GPU"] == 32 and capacity["train_driver"] == 1
    preset = presets.paper()
    at_start = {"CPU": 16, "train_driver": 1}  # only the head
    assert max_concurrent(preset, {"llama_7b"}, at_start) == 1
    assert max_concurrent(preset, {"llama_7b"}, at_start, capacity) == 4
    assert max_concurrent(preset, {"llama_7b", "llama_33b"}, at_start, capacity) == 2
    # Two worker types share the cluster's max_workers, GPU types first.
    two = {"max_workers": 3, "head_node_type": "h",
           "available_node_types": {"h": {"resources": {"CPU": 4}},
                                    "cpu": {"max_workers": 5, "resources": {"CPU": 8}},
                                    "gpu": {"max_workers": 2, "resources": {"GPU": 8}}}}
    assert growth_capacity(two) == {"CPU": 12.0, "GPU": 16.0}
