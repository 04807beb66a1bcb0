"""Run storage (local path and file:// URI, the remote code path driven through a file:// URI) and
the lease lock: racing processes, crashed holders, stale locks, lost leases. No network."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from paths import REPO

from core.storage import Lease, Storage


@pytest.fixture(params=["path", "file_uri"])
def storage(tmp_path, request):
    root = tmp_path / "runs"
    return Storage(root if request.param == "path" else f"file://{root}")


def test_json_round_trip_is_atomic_and_errors_name_the_file(storage):
    assert not storage.exists("a/b.json")
    storage.write_json("a/b.json", {"x": [1, "2/3"]})
    assert storage.exists("a/b.json") and storage.read_json("a/b.json") == {"x": [1, "2/3"]}
    storage.write_json("a/b.json", {"x": 2})
    assert storage.read_json("a/b.json") == {"x": 2}
    assert storage.list("a") == ["b.json"]  # no temp file left behind
    with pytest.raises(FileNotFoundError):
        storage.read_json("a/missing.json")
    storage.local_path("a/bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        storage.read_json("a/bad.json")


def test_create_exclusive_only_once(storage):
    assert storage.create_json_exclusive("l/x", {"who": 1})
    assert not storage.create_json_exclusive("l/x", {"who": 2})
    assert storage.read_json("l/x") == {"who": 1}
    storage.delete("l/x")
    storage.delete("l/x")  # a missing file is fine
    assert storage.create_json_exclusive("l/x", {"who": 3})


def test_relative_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Storage("./runs")
    assert s.is_local and s.uri == str(tmp_path / "runs")
    assert s.uri_of("ray") == str(tmp_path / "runs" / "ray")


def test_upload_then_download_local_and_remote_path(tmp_path, monkeypatch):
    src = tmp_path / "ckpt"
    (src / "sub").mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"\x00" * 100)
    (src / "sub" / "config.json").write_text("{}")
    local = Storage(tmp_path / "runs")
    local.upload_dir(src, "stages/s1")
    assert local.download_dir("stages/s1") == tmp_path / "runs" / "stages" / "s1"  # no copy
    assert (local.local_path("stages/s1") / "sub" / "config.json").exists()

    # The object-store branch, driven through a file:// URI: copied once into the cache.
    monkeypatch.setenv("DMT_CACHE", str(tmp_path / "cache"))
    remote = Storage(f"file://{tmp_path / 'runs'}")
    remote.is_local = False
    assert remote.uri_of("ray") == f"file://{tmp_path / 'runs' / 'ray'}"
    got = remote.download_dir("stages/s1")
    assert str(got).startswith(str(tmp_path / "cache"))
    assert (got / "model.safetensors").read_bytes() == b"\x00" * 100
    assert (got / "sub" / "config.json").exists()
    (tmp_path / "runs" / "stages" / "s1" / "model.safetensors").write_bytes(b"\x01")
    assert remote.download_dir("stages/s1") == got  # served from the cache
    assert (got / "model.safetensors").read_bytes() == b"\x00" * 100
    remote.write_json("stages/s2/manifest.json", {"ok": True})  # a single put
    assert remote.read_json("stages/s2/manifest.json") == {"ok": True}
    assert remote.create_json_exclusive("stages/s2/.lock", {"t": 1})
    assert not remote.create_json_exclusive("stages/s2/.lock", {"t": 2})
    with pytest.raises(FileNotFoundError):
        remote.download_dir("stages/none")


RACER = textwrap.dedent("""
    import sys, time
    from core.storage import Lease, Storage
    root, go = sys.argv[1], sys.argv[2]
    s = Storage(root)
    lease = Lease(s, "stages/x/.lock", ttl_s=5)
    while not s.exists(go):
        time.sleep(0.01)
    while True:
        if s.exists("stages/x/manifest.json"):
            print("reused"); break
        if lease.try_acquire():
            if s.exists("stages/x/manifest.json"):
                lease.release(); print("reused"); break
            with open(s.local_path("trained.log"), "a") as f:
                f.write("trained\\n")
            time.sleep(1.0)
            s.write_json("stages/x/manifest.json", {"done": True})
            lease.release(); print("trained"); break
        time.sleep(0.05)
""")


def test_racing_processes_train_once(tmp_path):
    storage = Storage(tmp_path / "runs")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, storage.uri, "go"], env=env,
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    time.sleep(1.0)  # all three are waiting on the start flag
    storage.write_json("go", {})
    outs = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert sorted(o[-1] for o in outs) == ["reused", "reused", "trained"]
    assert storage.local_path("trained.log").read_text() == "trained\n"
    assert not storage.exists("stages/x/.lock")


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_lock_from_another_host_is_taken_over_after_ttl(tmp_path):
    storage = Storage(tmp_path)
    storage.write_json("s/.lock", {"host": "elsewhere", "pid": 1, "token": "old",
                                   "time": time.time(), "ttl_s": 1.0})
    lease = Lease(storage, "s/.lock", ttl_s=1.0)
    assert not lease.try_acquire()  # fresh, and we cannot see another host's pids
    time.sleep(1.3)
    assert lease.try_acquire()
    assert storage.read_json("s/.lock")["token"] == lease.token
    assert storage.list("s") == [".lock"]  # the takeover claim is removed
    lease.release()
    assert not storage.exists("s/.lock")


def test_lock_of_a_dead_pid_on_this_host_is_stale_at_once(tmp_path):
    storage = Storage(tmp_path)
    storage.write_json("s/.lock", {"host": socket.gethostname(), "pid": dead_pid(),
                                   "token": "old", "time": time.time(), "ttl_s": 600})
    with Lease(storage, "s/.lock", ttl_s=600) as lease:
        assert lease.try_acquire()


def test_killed_holder_does_not_block_and_live_holder_keeps_its_lease(tmp_path):
    storage = Storage(tmp_path)
    code = ("import sys, time; from core.storage import Lease, Storage; "
            "l = Lease(Storage(sys.argv[1]), 's/.lock', ttl_s=0.6); assert l.try_acquire(); "
            "print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        waiter = Lease(storage, "s/.lock", ttl_s=0.6)
        time.sleep(1.5)  # > 2 TTLs: the heartbeat keeps the lock fresh
        assert not waiter.try_acquire()
        assert time.time() - storage.read_json("s/.lock")["time"] < 0.6
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert waiter.try_acquire()  # dead pid on this host: no need to wait out the TTL
    waiter.release()


def test_heartbeat_notices_a_lost_lease(tmp_path):
    storage = Storage(tmp_path)
    lease = Lease(storage, "s/.lock", ttl_s=0.4, heartbeat_s=0.05)
    assert lease.try_acquire()
    storage.write_json("s/.lock", {"token": "thief", "time": time.time(), "host": "x", "pid": 1})
    time.sleep(0.3)
    assert lease.lost
    lease.release()
    assert storage.read_json("s/.lock")["token"] == "thief"  # not ours to delete


def test_claim_left_by_a_crashed_taker_over_is_cleared(tmp_path):
    storage = Storage(tmp_path)
    old = {"host": "elsewhere", "pid": 1, "token": "old", "time": time.time() - 100, "ttl_s": 1}
    storage.write_json("s/.lock", old)
    storage.write_json("s/.lock.takeover-old", {**old, "token": "taker"})
    lease = Lease(storage, "s/.lock", ttl_s=1.0)
    assert not lease.try_acquire()  # blocked by the claim, which it clears as stale
    assert lease.try_acquire()
    lease.release()
    assert json.dumps(storage.list("s")) == "[]"
