"""`python -m sweep.rq2 --preset smoke --storage s3://BUCKET/PREFIX` against a real S3 API (the
loopback moto server): results, stage weights and manifests, eval outputs and per-item results
land in the bucket; a re-run trains and scores nothing; `sweep.report` reads them back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from paths import REPO

from sweep.cli import parse_fractions
from sweep.planning.plan import build_plan
from sweep.planning.resolution import resolve_preset
from sweep.study import grid, presets

FRACTIONS = "1/64"


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=1200, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_rq2_smoke_on_s3_stores_everything_in_the_bucket_and_reruns_nothing(s3, tmp_path):
    server, bucket_uri = s3
    uri = f"{bucket_uri}/sweeps/smoke"
    bucket = bucket_uri.removeprefix("s3://")
    ray_dir = tempfile.mkdtemp(prefix="ray-s3-", dir="/tmp")  # short: Ray's socket paths
    sweep = ["sweep.rq2", "--preset", "smoke", "--fractions", FRACTIONS, "--storage", uri,
             "--ray-temp-dir", ray_dir]
    smoke = resolve_preset(presets.smoke())  # as the sweep resolves it: the same ids
    plan = build_plan(grid.build_grid("rq2", smoke.models, parse_fractions(FRACTIONS)), smoke)
    try:
        out = _run(sweep, tmp_path)
        assert f"{len(plan.runs)} finished now, 0 failed" in out
        keys = [k.removeprefix("sweeps/smoke/") for k in server.keys(bucket)
                if not k.endswith("/")]  # pyarrow's folder markers
        runs = {p.run_id for p in plan.runs}
        stages = {s for p in plan.runs for s in p.stage_ids}
        assert {k.removeprefix("results/").removesuffix(".parquet")
                for k in keys if k.startswith("results/")} == runs
        assert {k.removeprefix("items/").removesuffix(".parquet")
                for k in keys if k.startswith("items/")} == runs
        for sid in stages:  # weights and manifest of every stage
            assert f"stages/{sid}/manifest.json" in keys
            assert any(k.startswith(f"stages/{sid}/") and k.endswith(".safetensors")
                       for k in keys)
        for run_id in runs:  # eval outputs (replies, sandbox results) of every run
            assert any(k.startswith(f"evals/{run_id}/") and k.endswith(".jsonl") for k in keys)
        assert not (tmp_path / "runs").exists() and not (tmp_path / "sweeps").exists()

        again = _run(sweep, tmp_path)  # all finished: no trial, no training, no scoring
        assert f"{len(plan.runs)} already finished, 0 finished now" in again
        assert "stages trained 0" in again

        rows = json.loads(_run(["sweep.report", "--storage", uri, "--json"], tmp_path))
        assert {r["run_id"] for r in rows["rows"] + rows["base"]} == runs
        measured = [r for r in rows["rows"] if r["metric"] == "gsm8k/flexible"]
        assert measured and all(r["n"] > 0 and r["ci_low"] <= r["value"] <= r["ci_high"]
                                for r in measured)
        _run(["sweep.report", "--storage", uri, "--out", str(tmp_path / "report")], tmp_path)
        assert "sweeps/smoke/report/report.md" in server.keys(bucket)
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
