"""Every benchmark runs as a user runs it, at a tiny size, so none can rot: each prints its figures
against the baseline it measures in the same command. The figures themselves are not asserted
(speed is for the benchmarks to measure, not for tests); that they are printed, and real, is.
The GPU check and the throughput breakdown have their own tests (test_gpu_check.py,
test_train_throughput_breakdown.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from paths import REPO

NUMBER = r"[0-9]+(?:\.[0-9]+)?"


def run(*args: str, timeout: int = 600) -> str:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    out = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                         timeout=timeout, env=env, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.slow
def test_data_driver_memory_measures_both_paths_and_their_ratios():
    out = run("benchmarks/data_driver_memory.py", "--records", "1200")
    for path in ("ray_data", "baseline"):
        line = next(x for x in out.splitlines() if x.startswith(path))
        assert re.search(r"read\s+1200\s+used\s+15\d\b", line), line  # 1/8 of each source
        assert "B/record" in line and "records/s" in line
    ratios = re.findall(rf"ratio new / baseline, (\w+): ({NUMBER})", out)
    assert [name for name, _ in ratios] == ["driver_rss_per_record", "object_store_peak",
                                             "records_per_s"]
    assert all(float(value) > 0 for _, value in ratios)


@pytest.mark.slow
def test_data_pipeline_runs_ray_data_beside_hf_datasets():
    out = run("benchmarks/data_pipeline.py", "--records", "600", "--cpus", "2")
    rates = re.findall(rf"(\d+) samples in {NUMBER}s = (\d+)/s", out)
    assert len(rates) == 2 and rates[0][0] == rates[1][0] != "0"  # the same samples, both ways
    assert re.search(rf"ratio \(ours / hf samples per second\): {NUMBER}", out)


def test_decontaminate_scaling_compares_each_size_with_the_first(tmp_path):
    sample = tmp_path / "chats.json"
    sample.write_text(json.dumps([
        {"id": f"s{i}", "conversations": [
            {"from": "human", "value": f"Tell me about river number {i} and where it flows"},
            {"from": "gpt", "value": "It flows into the sea past three old towns."}]}
        for i in range(4)]))
    out = run("benchmarks/decontaminate_scaling.py", "--sample", str(sample), "--times", "1,3",
              "--tests", "humaneval")
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [(r[0], r[2]) for r in rows] == [("1", "4"), ("3", "12")]  # every sample read
    assert rows[0][-2:] == ["1.00", "1.00"]  # the first size is the baseline


def test_generation_compares_batched_with_batch_one():
    out = run("benchmarks/generation.py", "--model", "tiny_llama", "--prompts", "4",
              "--batch-size", "2", "--max-new-tokens", "4")
    assert re.search(rf"batch 1:\s+{NUMBER}s\s+{NUMBER} tokens/s", out)
    assert re.search(rf"speed-up: {NUMBER}x; identical replies: 4/4", out)


def test_train_throughput_runs_the_loop_beside_the_trainer():
    out = run("-m", "benchmarks.train_throughput", "--model", "tiny_llama", "--steps", "3",
              "--warmup", "1", "--batch", "2", "--max-len", "96", "--repeats", "1")
    for batches in ("padded", "packed"):
        assert re.search(rf"^{batches}\s+\d+ \[\d+-\d+\]\s+\d+ \[\d+-\d+\]\s+{NUMBER}", out,
                         re.MULTILINE), out
    assert re.search(rf"loop packed / Trainer padded = {NUMBER} = padding removed {NUMBER}",
                     out)


def test_search_benchmark_measures_search_random_and_the_grid():
    out = run("benchmarks/search_emulated.py", "--seeds", "2", "--budget", "30")
    assert re.search(r"emulated grid: 10000 compositions, best", out)
    for method in ("search (TPE)", "random search"):
        assert re.search(rf"{re.escape(method)}\s+reached \d+/2 seeds", out), out
    assert re.search(rf"ratio search / random search \(median runs\): {NUMBER}", out)
    assert re.search(rf"ratio search / full grid: {NUMBER}", out)
