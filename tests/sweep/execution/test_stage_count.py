"""The sweep's summary counts stages from storage: a stage missing when the sweep began and
complete now was trained by it, once, however many attempts or reports it took; every other use
of a stage by a run that finished is a reuse."""

from __future__ import annotations

from types import SimpleNamespace

from sweep.execution import driver


def _job(run_id: str, *stage_ids: str):
    return SimpleNamespace(run_id=run_id, stage_ids=stage_ids)


def test_stages_trained_come_from_storage_not_from_trial_reports(monkeypatch):
    complete = {"shared", "a2", "b2", "old"}  # manifests in storage after the sweep
    monkeypatch.setattr(driver, "read_manifest", lambda storage, sid: sid in complete or None)
    jobs = [_job("base"), _job("a", "shared", "a2"), _job("b", "shared", "b2"),
            _job("c", "old"), _job("lost", "lost1")]
    summary = driver.SweepSummary(runs=5, finished=["base", "a", "b", "c"],
                                  stages_trained=99)  # whatever trials reported is replaced
    driver.count_stages(summary, jobs, missing={"shared", "a2", "b2", "lost1"}, storage=None)
    # trained now: shared, a2, b2 (lost1 never completed; old was there before)
    assert summary.stages_trained == 3
    # uses by finished runs: shared twice, a2, b2, old = 5; of them 3 trained now
    assert summary.stages_reused == 2
