"""The scale path on a simulated autoscaling cluster (tests/sim_cluster.py, cluster_sim.yaml):
the smoke grid's rq4 strategies asking for simulated GPUs as LLaMA-7B runs ask for real ones
(2 sim_gpu = one worker node per run), storage on the loopback S3 server, and two spot losses:
a worker node killed in the middle of a stage (after its first mid-stage checkpoint), and the
node that trained a first stage killed once that stage is done.

Asserted: the cluster starts with no worker and the autoscaler adds them; two runs train at the
same time on different nodes; the preempted stage resumes on another node from its checkpoint
in storage; the second stages run on nodes other than their first stage's; no finished stage
is trained twice; and the stage ids, loss curves and every metric of the runs through the
preempted stage equal those of a plain local run with the same worker count (`--workers 2`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from paths import REPO

from tests.sim_cluster import SimCluster

GRID = ["sweep.rq4", "--preset", "smoke", "--ks", "1",
        "--strategies", "math_only,code_only,mixed_sequential,dmt"]
SHARED_FIRST = ("mixed_sequential", "dmt")  # both start with [code=1,math=1]
SWEEP_LIMIT_S = 1800

pytestmark = pytest.mark.slow


def _sweep(args: list[str], cwd: Path, env: dict | None = None, on_timeout=str) -> str:
    """The sweep's stdout. The limit only guards against a hang: a quiet 2-core machine takes
    ~4 minutes, one with a core taken by other work more than 10."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO), **(env or {})}
    try:
        out = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=SWEEP_LIMIT_S, check=False)
    except subprocess.TimeoutExpired as e:
        tails = [(x or b"")[-4000:] for x in (e.stdout, e.stderr)]
        text = "\n".join(t.decode(errors="replace") if isinstance(t, bytes) else t
                         for t in tails)
        raise AssertionError(f"sweep still running after {SWEEP_LIMIT_S} s:\n{text}\n"
                             f"{on_timeout()}") from None
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    return out.stdout


def _plan(extra: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-m", *GRID, *extra, "--dry-run", "--json"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    return json.loads(out.stdout)


class SpotLosses(threading.Thread):
    """Watches the bucket and kills nodes as a cloud reclaims spot VMs: the node training
    `stage` once its first mid-stage checkpoint is in storage, then the node that finished it
    once its manifest is. Records what it killed, and when."""

    def __init__(self, cluster: SimCluster, bucket: str, prefix: str, stage: str, cache: Path):
        super().__init__(daemon=True)
        self.cluster, self.bucket, self.prefix, self.stage = cluster, bucket, prefix, stage
        self.cache = cache
        self.events: list[dict] = []
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            run_dir = f"{self.prefix}/ray/{self.stage}"
            # A checkpoint counts once Train's controller has registered it (its snapshot names
            # it), not when a worker's upload lands: only a registered one is resumed from.
            snapshot = self._wait_json(f"{run_dir}/checkpoint_manager_snapshot.json", "",
                                       lambda s: s.get("latest_checkpoint_result"))
            name = snapshot["latest_checkpoint_result"]["checkpoint_dir_name"]
            state = self._wait_json(f"{run_dir}/{name}/train_state.json", "")
            self._kill("mid-stage", state["placements"][-1]["nodes"], step=state["step"])
            manifest = self._wait_json(f"{self.prefix}/stages/{self.stage}/manifest.json", "")
            self._kill("after stage", manifest["placements"][-1]["nodes"])
        except Exception as e:  # noqa: BLE001 (any failure here is the test's to report)
            self.error = e

    def _kill(self, when: str, nodes: list[str], **info) -> None:
        """The nodes' processes and their local disk (their cache folder) go, as with a VM:
        whatever relied on a lost node's local copy fails the test."""
        pids = [pid for node in nodes for pid in self.cluster.kill_node(node)]
        assert pids, f"{when}: no process of nodes {nodes} to kill"
        for node in nodes:
            shutil.rmtree(self.cache / "nodes" / node, ignore_errors=True)
        self.events.append({"when": when, "nodes": nodes, "at": time.time(), **info})

    def _wait_json(self, prefix: str, suffix: str, ready=lambda data: True) -> dict:
        """The first object under `prefix` ending in `suffix` whose JSON is `ready`."""
        import boto3

        client = boto3.client("s3")
        while not self.stop.is_set():
            listing = client.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
            for key in sorted(o["Key"] for o in listing.get("Contents", [])
                              if o["Key"].endswith(suffix)):
                data = json.loads(client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
                if ready(data):
                    return data
            time.sleep(0.3)
        raise TimeoutError(f"nothing under s3://{self.bucket}/{prefix} ending {suffix!r}")


def _manifests(server, bucket: str, prefix: str) -> dict[str, dict]:
    import boto3

    client = boto3.client("s3")
    out = {}
    for key in server.keys(bucket):
        if key.startswith(f"{prefix}/stages/") and key.endswith("/manifest.json"):
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            manifest = json.loads(body)
            out[manifest["stage_id"]] = manifest
    return out


def _results(storage: str) -> dict[tuple[str, str], float]:
    out = subprocess.run([sys.executable, "-m", "sweep.report", "--storage", storage, "--json"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    rows = json.loads(out.stdout)
    return {(r["run_id"], r["metric"]): r["value"] for r in rows["rows"] + rows["base"]}


def _overlap(a: dict, b: dict) -> bool:
    start_a, start_b = a["placements"][0]["started_at"], b["placements"][0]["started_at"]
    return start_a < b["finished_at"] and start_b < a["finished_at"]


def test_simulated_cluster_scales_from_zero_survives_spot_losses_and_matches_a_local_run(
        s3, tmp_path):
    server, bucket_uri = s3
    bucket, prefix = bucket_uri.removeprefix("s3://"), "sim"
    sim_plan = _plan(["--simulate-gpus"])
    local_plan = _plan(["--workers", "2"])
    runs = {r["id"]: r for r in sim_plan["run_list"]}
    assert set(runs) == {r["id"] for r in local_plan["run_list"]}  # same ids, same stages
    shared = {r["stage_ids"][0] for r in sim_plan["run_list"]
              if any(r["id"].startswith(f"rq4-{s}-") for s in SHARED_FIRST)}
    assert len(shared) == 1
    shared_stage = shared.pop()

    t0 = time.time()
    cache = {"DMT_CACHE": str(tmp_path / "cache")}  # every node's cache folder in one place
    with SimCluster(env=cache) as cluster:
        assert [n["is_head_node"] for n in cluster.nodes()] == [True]  # no worker at start
        losses = SpotLosses(cluster, bucket, prefix, shared_stage, tmp_path / "cache")
        losses.start()
        try:
            out = _sweep([*GRID, "--simulate-gpus", "--checkpoint-every", "1",
                          "--address", cluster.address, "--cluster-config",
                          str(cluster.config_path), "--storage", f"{bucket_uri}/{prefix}"],
                         tmp_path, env=cache, on_timeout=cluster.autoscaler_log)
        finally:
            losses.stop.set()
            losses.join(30)
        nodes = cluster.nodes()
    sim_s = time.time() - t0
    assert losses.error is None, repr(losses.error)
    print(out)
    workers = sorted(n["node_id"] for n in nodes if not n["is_head_node"])
    print(f"simulated cluster: {len(workers)} worker nodes added from 0 in {sim_s:.0f} s; "
          f"spot losses {losses.events}")
    assert f"{len(runs)} finished now, 0 failed" in out
    assert "fan-out sized for the cluster" in out

    manifests = _manifests(server, bucket, prefix)
    stages = {s for r in sim_plan["run_list"] for s in r["stage_ids"]}
    assert set(manifests) == stages
    assert f"stages trained {len(stages)}," in out  # none trained twice
    for sid, m in manifests.items():
        print(f"stage {sid} [{m['recipe']}]: " + "; ".join(
            f"from step {p['from_step']} on {[n[-5:] for n in p['nodes']]}"
            for p in m["placements"]))
        assert all(n in workers for p in m["placements"] for n in p["nodes"])  # never the head

    # Two runs trained at once on different nodes.
    first = {r["stage_ids"][0]: r["id"] for r in sim_plan["run_list"] if r["stage_ids"]}
    assert any(_overlap(manifests[a], manifests[b]) and
               not set(manifests[a]["placements"][0]["nodes"]) &
               set(manifests[b]["placements"][0]["nodes"])
               for a in first for b in first if a < b), "no two runs trained at the same time"

    # The preempted stage resumed on another node from its checkpoint, at the same step.
    mid = next(e for e in losses.events if e["when"] == "mid-stage")
    placements = manifests[shared_stage]["placements"]
    assert len(placements) == 2 and placements[0]["nodes"] == mid["nodes"]
    assert placements[1]["from_step"] >= mid["step"] >= 1
    assert not set(placements[1]["nodes"]) & set(mid["nodes"])
    assert manifests[shared_stage]["metrics"]["resumed_from"] == [placements[1]["from_step"]]

    # Second stages ran elsewhere: their parent came through storage, not a node's disk, and
    # each node kept its own cache.
    after = next(e for e in losses.events if e["when"] == "after stage")
    cached_on = {p.name for p in (tmp_path / "cache" / "nodes").iterdir()}
    for r in sim_plan["run_list"]:
        if len(r["stage_ids"]) == 2:
            last = manifests[r["stage_ids"][1]]["placements"][-1]["nodes"]
            assert not set(last) & set(after["nodes"])
            assert set(last) <= cached_on  # the parent copied into that node's own cache

    # The same numbers as a plain local Ray with the same worker count, for the runs through the
    # preempted stage and the lost node (the single-source runs add nothing here but minutes).
    local_storage = tmp_path / "local"
    ray_dir = tempfile.mkdtemp(prefix="ray-simcmp-", dir="/tmp")
    _sweep([*GRID[:-1], ",".join(SHARED_FIRST), "--workers", "2", "--storage",
            str(local_storage), "--ray-temp-dir", ray_dir, "--max-concurrent", "1"], tmp_path)
    local_manifests = {p.parent.name: json.loads(p.read_text())
                       for p in (local_storage / "stages").glob("*/manifest.json")}
    compared = {s for r in sim_plan["run_list"] for s in r["stage_ids"]
                if any(r["id"].startswith(f"rq4-{name}-") for name in SHARED_FIRST)}
    assert set(local_manifests) == compared and shared_stage in compared
    for sid in compared:
        assert manifests[sid]["loss_curve"] == local_manifests[sid]["loss_curve"], sid
    local_values = _results(str(local_storage))
    sim_values = {key: v for key, v in _results(f"{bucket_uri}/{prefix}").items()
                  if key[0] in {run_id for run_id, _ in local_values}}
    assert local_values and sim_values == local_values
