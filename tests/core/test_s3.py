"""Run storage on a real S3 API (moto's server on loopback, tests/s3_server.py): files, folders,
and leases whose claims and takeovers are atomic (conditional puts), raced by two processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from paths import REPO, TESTS

from core.storage import Lease, Storage

RACER = TESTS / "race_worker.py"


def test_files_and_folders_round_trip(s3, tmp_path):
    server, uri = s3
    storage = Storage(f"{uri}/runs")
    assert not storage.is_local and storage.atomic_claims
    storage.write_json("results/a.json", {"x": 1})
    assert storage.read_json("results/a.json") == {"x": 1}
    with pytest.raises(FileNotFoundError):
        storage.read_json("results/missing.json")
    assert storage.create_json_exclusive("s/.lock", {"who": 1})
    assert not storage.create_json_exclusive("s/.lock", {"who": 2})
    assert storage.read_json("s/.lock") == {"who": 1}
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "model.safetensors").write_bytes(b"\0" * 1000)
    storage.upload_dir(tmp_path / "w", "stages/abc")
    assert storage.list("stages/abc") == ["model.safetensors"]
    local = storage.download_dir("stages/abc", tmp_path / "copy")
    assert (local / "model.safetensors").read_bytes() == b"\0" * 1000
    bucket = uri.removeprefix("s3://")
    files = {k for k in server.keys(bucket) if not k.endswith("/")}  # pyarrow's folder markers
    assert files == {"runs/results/a.json", "runs/s/.lock",
                                        "runs/stages/abc/model.safetensors"}


def test_takeover_replaces_only_the_record_it_read(s3):
    """A stale lease is taken over with If-Match on the ETag read: a waiter holding an older
    ETag (someone took over since) loses, and the old holder's heartbeat notices it lost."""
    _, uri = s3
    storage = Storage(uri)
    old = Lease(storage, "s/.lock", ttl_s=0.5, heartbeat_s=60)
    assert old.try_acquire()
    time.sleep(0.7)  # stale: its heartbeat is too slow to keep it
    new = Lease(storage, "s/.lock", ttl_s=30)
    assert new.try_acquire() and storage.read_json("s/.lock")["token"] == new.token
    # The old holder wakes up: its heartbeat's If-Match on its own last ETag fails.
    assert storage.replace_json_if("s/.lock", old.record(), old._tag) is None
    third = Lease(storage, "s/.lock", ttl_s=30)
    assert not third.try_acquire()  # new is fresh
    new.release()
    assert not storage.exists("s/.lock")


def _race(*argv: str) -> list[subprocess.Popen]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return [subprocess.Popen([sys.executable, str(RACER), *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]


def _results(procs: list[subprocess.Popen]) -> list:
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-2000:]
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def test_two_processes_racing_for_the_same_leases_never_both_win(s3):
    _, uri = s3
    keys = [f"stages/s{i}/.lock" for i in range(12)]
    a, b = _results(_race("leases", uri, str(time.time() + 8), *keys))
    assert not set(a) & set(b), f"both won {sorted(set(a) & set(b))}"
    assert sorted(a + b) == sorted(keys)  # and every lease went to someone


def test_two_processes_racing_to_take_over_a_stale_lease_never_both_win(s3):
    _, uri = s3
    storage = Storage(uri)
    keys = [f"stages/t{i}/.lock" for i in range(8)]
    for key in keys:  # crashed holders on another host, long expired
        storage.write_json(key, {"host": "gone", "pid": 1, "token": f"dead-{key}",
                                 "time": time.time() - 3600, "ttl_s": 60})
    a, b = _results(_race("leases", uri, str(time.time() + 8), *keys))
    assert not set(a) & set(b) and sorted(a + b) == sorted(keys)


@pytest.mark.slow
def test_two_processes_missing_the_same_stage_train_it_once(s3, tmp_path):
    _, uri = s3
    start = str(time.time() + 12)  # both past their imports (torch, transformers) by then
    procs = [subprocess.Popen([sys.executable, str(RACER), "stage", uri, start,
                               str(tmp_path / f"fits-{i}")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ,
                                   "PYTHONPATH": str(REPO)})
             for i in range(2)]
    trained = _results(procs)
    assert sorted(trained) == [[False], [True]]
    fits = [p for i in range(2) for p in (tmp_path / f"fits-{i}").glob("fit-*")]
    assert len(fits) == 1  # one process fitted, the other waited and reused its manifest
