"""The judge's key never leaves the sweep's driver: a judged smoke sweep on S3 (loopback moto)
against the loopback judge, with a planted key in the driver's environment, gives judged
MT-Bench numbers pinned to the judge's snapshot, and the key is in no object of the bucket, no
file under the test's folders or Ray's temp folder, and not in the console."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from paths import ASSETS, REPO

sys.path.insert(0, str(ASSETS))
from mtb_judge_server import JudgeServer

SNAPSHOT = "judge-model-2024-05-13"


def _bucket_objects(bucket: str):
    import boto3
    from s3_server import ENDPOINT

    client = boto3.client("s3", endpoint_url=ENDPOINT)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    for page in pages:
        for obj in page.get("Contents", []):
            yield obj["Key"], client.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()


def _files_with(root: Path, needle: bytes) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink() and needle in path.read_bytes():
                hits.append(str(path))
        except OSError:
            continue  # sockets, files removed while we looked
    return hits


@pytest.mark.slow
def test_planted_key_is_used_by_the_driver_only(s3, tmp_path):
    _, bucket_uri = s3
    bucket = bucket_uri.removeprefix("s3://")
    key = f"sk-planted-{uuid.uuid4().hex}"
    ray_dir = tempfile.mkdtemp(prefix="ray-key-", dir="/tmp")  # short: Ray's socket paths
    uri = f"{bucket_uri}/sweeps/judged"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO),
           "DMT_TEST_JUDGE_KEY": key}
    env.pop("OPENAI_API_KEY", None)
    try:
        with JudgeServer(snapshot=SNAPSHOT) as judge:
            out = subprocess.run(
                [sys.executable, "-m", "sweep.rq1", "--preset", "smoke", "--fractions", "1/64",
                 "--storage", uri, "--ray-temp-dir", ray_dir, "--judge-url", judge.url,
                 "--judge-model", "judge-model", "--judge-key-env", "DMT_TEST_JUDGE_KEY"],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200,
                check=False)
        console = out.stdout + out.stderr
        assert out.returncode == 0, console[-4000:]
        # the key was used where the judge calls happen, and only there
        assert judge.authorizations and set(judge.authorizations) == {f"Bearer {key}"}
        assert "0 failed" in out.stdout and " judged;" in out.stdout

        rows = json.loads(subprocess.run(
            [sys.executable, "-m", "sweep.report", "--storage", uri, "--json"], cwd=tmp_path,
            env=env, capture_output=True, text=True, timeout=600, check=True).stdout)
        mt = [r for r in rows["rows"] + rows["base"] if r["metric"] == "mtbench/mean"]
        assert mt and all(r["judged"] and r["judge_snapshot"] == SNAPSHOT for r in mt)
        assert all(r["n"] > 0 and r["ci_low"] <= r["value"] <= r["ci_high"] for r in mt)
        assert rows["judge_snapshot"] == SNAPSHOT and not rows["set_aside_judges"]
        he = [r for r in rows["rows"] + rows["base"] if r["metric"] == "humaneval/pass@1"]
        assert he and all(r["isolation"] for r in he)
        print(f"planted key: {len(mt)} runs judged by {SNAPSHOT}, "
              f"{len(judge.requests)} judge requests")

        objects = dict(_bucket_objects(bucket))
        assert any(k.endswith("mtbench_judgments.jsonl") for k in objects)
        assert any(k.endswith("/tuner.pkl") for k in objects)  # Tune's pickled run config
        leaked = [k for k, body in objects.items() if key.encode() in body]
        assert not leaked, f"key in bucket objects {leaked}"
        assert not _files_with(tmp_path, key.encode())
        assert not _files_with(Path(ray_dir), key.encode())
        assert key not in console
        print(f"planted key found in none of {len(objects)} bucket objects, the test's "
              f"folders, Ray's temp folder or the console")
    finally:
        shutil.rmtree(ray_dir, ignore_errors=True)
