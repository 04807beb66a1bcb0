"""`python -m benchmarks.gpu_check` on CPU (tiny sizes, ~30 s): every part writes its JSON with
its fields, GPU-only parts say why they skipped, a part that fails or hangs is recorded and the
rest still run, and nothing imports Ray (the GPU machine has none)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO

from benchmarks import gpu_check


@pytest.fixture(scope="module")
def check(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpucheck")
    # its own interpreter, so "ray" in sys.modules means the check imported it
    code = ("import sys; from benchmarks import gpu_check; gpu_check.main(['--out', sys.argv[1]]);"
            "assert 'ray' not in sys.modules, 'the GPU check imported ray'")
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, cwd=REPO, timeout=300)
    return out


def test_every_part_writes_its_json_without_ray(check):
    summary = json.loads((check / "summary.json").read_text())
    assert set(summary["parts"]) == set(gpu_check.TIMEOUTS)
    assert summary["device"] == "cpu" and summary["size"] == "cpu" and summary["mfu"] is None
    for name in gpu_check.TIMEOUTS:
        part = json.loads((check / f"{name}.json").read_text())
        assert part["part"] == name and "wall_s" in part
        if name in ("deepspeed", "vllm"):
            assert part["status"].startswith("skipped: ") and part["ok"] is None
        else:
            assert part["status"] == "done" and part["ok"] is True, part
            assert part["ray_imported"] is False


def test_part_figures(check):
    precision = json.loads((check / "precision.json").read_text())
    assert len(precision["loss_fp32"]) == len(precision["loss_bf16"]) == precision["steps"]
    assert precision["diff_at_worst"] <= precision["tolerance_at_worst"]
    assert precision["weights_moved_fraction"]["bf16"] > 0.9
    packing = json.loads((check / "packing.json").read_text())
    for kernel in ("sdpa/float32", "eager/float32"):
        result = packing["kernels"][kernel]
        assert result["ok"] and result["other_samples_max_logit_change"] <= 1e-4
        assert result["perturbed_sample_change"] > 0
    speed = packing["train_fwd_bwd"]
    assert speed["packed"]["computed_tokens"] == speed["packed"]["real_tokens"]
    assert speed["padded"]["computed_tokens"] > speed["padded"]["real_tokens"]
    throughput = json.loads((check / "throughput.json").read_text())
    best = throughput["tiny"]["largest_fitting"]
    assert best["tokens_per_s"] > 0 and best["mfu"] > 0 and throughput["peak"]["flops"] > 0
    assert throughput["llama_1b"]["skipped"]
    generation = json.loads((check / "generation.json").read_text())
    for dtype in ("float32", "bfloat16"):
        assert 0 <= generation[dtype]["identical_to_batch1"] <= 1
        assert generation[dtype]["batched_tokens_per_s"] > 0
    assert generation["float32"]["identical_to_batch1"] >= 0.75


def test_a_failing_or_hanging_part_is_recorded(tmp_path, monkeypatch):
    monkeypatch.setitem(gpu_check.TIMEOUTS, "generation", 0.01)
    summary = gpu_check.main(["--out", str(tmp_path), "--parts", "generation,vllm"])
    gen = json.loads((tmp_path / "generation.json").read_text())
    assert gen["status"].startswith("timeout") and gen["ok"] is False
    assert summary["parts"]["vllm"]["status"] == "skipped: not installed" \
        or summary["parts"]["vllm"]["status"].startswith("skipped")
    (tmp_path / "generation.json").unlink()
    gpu_check.run_part("nonexistent", "cpu", tmp_path)  # an exception inside a part
    failed = json.loads((tmp_path / "nonexistent.json").read_text())
    assert failed["status"].startswith("failed: KeyError") and failed["ok"] is False
