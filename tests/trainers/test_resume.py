"""Fault tolerance: a worker killed mid-stage (rank 1 exits once after step 5: tests/faults.py) makes Ray
restart the group (FailureConfig(max_failures=1)); it resumes from the last registered checkpoint (step 4 or 2) at the same
data position, and the whole loss curve equals the uninterrupted run's, here the same steps run
in-process by plain torch (which test_deepspeed.py also checks ZeRO-3 against)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from faults import dies_once
from training_reference import SETTINGS, fit, reference_run, stage_dataset, stage_rows


@pytest.mark.slow
def test_killed_worker_resumes_at_the_same_data_position(ray_local, tmp_path, monkeypatch):
    import trainers.loop

    settings = replace(SETTINGS, epochs=2, checkpoint_every_steps=2, max_failures=1)
    marker = tmp_path / "killed-once"
    monkeypatch.setattr(trainers.loop, "train_loop_per_worker", dies_once(1, 5, marker))
    outcome = fit(stage_dataset(16, epochs=2), tmp_path, "resume", settings)
    assert marker.exists(), "the fault hook never fired"
    # Restarted once from a mid-stage checkpoint: step 4's, or step 2's when Ray had not yet
    # registered step 4's before rank 1 died (its report is collected from every rank).
    assert outcome.metrics["resumed_from"] in ([2], [4])
    ref_losses, ref_norms, _ = reference_run(stage_rows(16, epochs=2), settings)
    assert outcome.steps == len(ref_losses) == 8
    assert outcome.loss_curve == pytest.approx(ref_losses, rel=1e-5)
    assert outcome.metrics["grad_norm_curve"] == pytest.approx(ref_norms, rel=1e-4)
    assert outcome.tokens_seen == 2 * sum(len(r["input_ids"]) for r in stage_rows(16, 1))
    checkpoints = sorted(p.name for p in (tmp_path / "ray" / "resume").glob("*")
                         if p.is_dir())
    assert "final" in checkpoints
