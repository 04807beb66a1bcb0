"""The sweep's own progress table (sweep/execution/console.py), rendered from synthetic Tune results."""

from __future__ import annotations

from sweep.execution.console import COLUMNS, TrialView, render_table, update_view, view_of


def _view():
    return view_of({"job": {"run_id": "rq2-mixed-abc", "question": "rq2", "strategy": "mixed",
                            "amounts": "f=1/64"}})


def test_table_shows_stage_step_loss_and_an_eta_from_the_step_rate():
    v = _view()
    update_view(v, {"stage": "1/2", "stage_index": 1, "status": "stage training"}, now=0.0)
    assert v.step is None and v.eta_s is None
    update_view(v, {"stage": "1/2", "stage_index": 1, "status": "stage training", "step": 2,
                    "total_steps": 12, "loss": 1.5}, now=10.0)
    update_view(v, {"stage": "1/2", "stage_index": 1, "status": "stage training", "step": 4,
                    "total_steps": 12, "loss": 1.25}, now=30.0)
    assert v.eta_s == 80.0  # 2 steps in 20 s, 8 left
    pending = TrialView(run="rq1-math-def", question="rq1", what="math only f=1/64")
    text = render_table([v, pending], "12:00:00")
    head, columns, row, row2 = text.splitlines()
    assert head == ("== sweep progress 12:00:00: 2 runs, 1 running, 0 done, 0 failed, "
                    "1 pending ==")
    assert columns.split() == list(COLUMNS)
    assert row.split() == ["rq2-mixed-abc", "rq2", "mixed", "f=1/64", "1/2", "4/12", "1.2500",
                           "1m20s", "stage", "training"]
    assert row2.split()[-1] == "pending" and "-" in row2.split()
    assert columns.index("step/total") == row.index("4/12")  # columns line up


def test_a_new_stage_clears_the_loss_and_restarts_the_rate():
    v = _view()
    update_view(v, {"stage": "1/2", "stage_index": 1, "step": 5, "total_steps": 5, "loss": 0.5},
                now=0.0)
    update_view(v, {"stage": "2/2", "stage_index": 2, "status": "stage training"}, now=50.0)
    assert v.loss is None and v.step is None and v.eta_s is None
    update_view(v, {"stage": "2/2", "stage_index": 2, "step": 1, "total_steps": 3, "loss": 2.0},
                now=60.0)
    assert v.eta_s is None  # one point: no rate yet
    update_view(v, {"stage": "2/2", "stage_index": 2, "step": 3, "total_steps": 3, "loss": 1.0},
                now=64.0)
    assert v.eta_s == 0.0
    v.state = "ERROR"
    assert render_table([v]).splitlines()[-1].split()[-1] == "FAILED"


def test_callback_prints_at_most_every_refresh_and_once_at_the_end():
    from sweep.execution.console import console_callback

    class Trial:
        def __init__(self, run_id, status="RUNNING"):
            self.config = {"job": {"run_id": run_id, "question": "rq2", "strategy": "mixed",
                                   "amounts": "f=1"}}
            self.status = status

    now = [0.0]
    out: list[str] = []
    cb = console_callback(every_s=15.0, emit=out.append, clock=lambda: now[0], total=3)
    t = Trial("r1")
    for second in (0, 5, 10, 16, 20):
        now[0] = float(second)
        cb.on_trial_result(1, [t], t, {"stage": "1/1", "stage_index": 1, "step": second + 1,
                                       "total_steps": 40, "loss": 1.0})
    assert len(out) == 2  # at 0 s and at 16 s
    assert "3 runs, 1 running, 0 done, 0 failed, 2 pending" in out[0]  # 2 not yet started
    t.status = "TERMINATED"
    cb.on_experiment_end([t])
    assert len(out) == 3 and "1 done" in out[-1]
