"""A racer for tests/core/test_s3.py, run as its own process: waits for a common start time, then
tries the leases or trains the stage it is told to, and prints what it won as JSON.
    python tests/race_worker.py leases STORAGE_URI START_TIME KEY [KEY ...]
    python tests/race_worker.py stage STORAGE_URI START_TIME FITS_DIR
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))


def wait_until(start: float) -> None:
    while time.time() < start:
        time.sleep(0.001)


def race_leases(uri: str, start: float, keys: list[str]) -> list[str]:
    from core.storage import Lease, Storage

    storage = Storage(uri)
    won, leases = [], []
    for key in keys:
        wait_until(start)
        start += 0.5  # every key at its own common instant
        lease = Lease(storage, key, ttl_s=30)
        if lease.try_acquire():
            won.append(key)
            leases.append(lease)  # held (heartbeating) until the end: never released early
    time.sleep(1.0)
    return won


def race_stage(uri: str, start: float, fits: str) -> list[bool]:
    from stage_fakes import SETTINGS, SPECS, FakeFit, fake_build

    from core.storage import Storage
    from sweep.study import strategies as st
    from trainers.stages import run_stages

    fit = FakeFit(Path(fits), delay_s=2.0)
    wait_until(start)
    results = run_stages("tiny_llama", st.single("math"), SPECS, Storage(uri), settings=SETTINGS,
                         fit=fit, build_dataset=fake_build, poll_s=0.2)
    return [r.trained for r in results]


if __name__ == "__main__":
    mode, uri, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    if mode == "leases":
        print(json.dumps(race_leases(uri, start, sys.argv[4:])))
    else:
        print(json.dumps(race_stage(uri, start, sys.argv[4])))
