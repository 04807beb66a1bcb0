"""The sweep's own progress table (sweep/execution/console.py) and its ETA (eta.py), rendered from
synthetic Tune results: training steps, evaluation items, and the whole sweep's time left."""

from __future__ import annotations

from sweep.execution.console import COLUMNS, TrialView, render_table, update_view, view_of


def _view():
    return view_of({"job": {"run_id": "rq2-mixed-abc", "question": "rq2", "strategy": "mixed",
                            "amounts": "f=1/64"}})


def test_table_shows_stage_step_loss_and_an_eta_from_the_step_rate():
    v = _view()
    update_view(v, {"stage": "1/2", "phase": "stage 1", "status": "stage training"}, now=0.0)
    assert v.step is None and v.eta_s is None
    update_view(v, {"stage": "1/2", "phase": "stage 1", "status": "stage training", "step": 2,
                    "total_steps": 12, "loss": 1.5}, now=10.0)
    update_view(v, {"stage": "1/2", "phase": "stage 1", "status": "stage training", "step": 4,
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
    update_view(v, {"stage": "1/2", "phase": "stage 1", "step": 5, "total_steps": 5, "loss": 0.5},
                now=0.0)
    update_view(v, {"stage": "2/2", "phase": "stage 2", "status": "stage training"}, now=50.0)
    assert v.loss is None and v.step is None and v.eta_s is None
    update_view(v, {"stage": "2/2", "phase": "stage 2", "step": 1, "total_steps": 3, "loss": 2.0},
                now=60.0)
    assert v.eta_s is None  # one point: no rate yet
    update_view(v, {"stage": "2/2", "phase": "stage 2", "step": 3, "total_steps": 3, "loss": 1.0},
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
            self.trial_id = f"trial-{run_id}"

    now = [0.0]
    out: list[str] = []
    cb = console_callback(every_s=15.0, emit=out.append, clock=lambda: now[0], total=3)
    t = Trial("r1")
    for second in (0, 5, 10, 16, 20):
        now[0] = float(second)
        cb.on_trial_result(1, [t], t, {"stage": "1/1", "phase": "stage 1", "step": second + 1,
                                       "total_steps": 40, "loss": 1.0})
    assert len(out) == 2  # at 0 s and at 16 s
    assert "3 runs, 1 running, 0 done, 0 failed, 2 pending" in out[0]  # 2 not yet started
    t.status = "TERMINATED"
    cb.on_experiment_end([t])
    assert len(out) == 3 and "1 done" in out[-1]


def test_an_evaluation_shows_its_eval_items_and_their_eta():
    v = _view()
    update_view(v, {"stage": "1/1", "phase": "stage 1", "step": 5, "total_steps": 5,
                    "loss": 0.5}, now=0.0)
    eval_result = {"stage": "eval 1/3", "phase": "eval gsm8k generate",
                   "status": "gsm8k: generate", "total_steps": 100}
    update_view(v, {**eval_result, "step": 8}, now=10.0)
    assert v.loss is None and v.eta_s is None  # the loss was the stage's; no rate yet
    update_view(v, {**eval_result, "step": 24}, now=30.0)
    assert v.eta_s == 95.0  # 16 items in 20 s, 76 left
    row = render_table([v]).splitlines()[-1].split()
    assert row[4:] == ["eval", "1/3", "24/100", "-", "1m35s", "gsm8k:", "generate"]


def _eta_work():
    from sweep.execution.eta import SweepEta, SweepWork

    work = SweepWork(stage_tokens={"s1": 1000, "s2": 3000},
                     run_stages={"base": (), "r1": ("s1",), "r2": ("s1", "s2")},
                     run_items={"base": {"gsm8k": 10}, "r1": {"gsm8k": 10},
                                "r2": {"gsm8k": 10}}, concurrency=1)
    return SweepEta(work)


def test_the_sweep_eta_is_the_work_left_at_the_rates_measured():
    eta = _eta_work()
    assert eta.estimate(0.0).text == "ETA measuring (4,000 tokens to train, 30 eval items)"
    ev = {"eval": "gsm8k", "stage_id": None}
    eta.observe("base", {**ev, "eval_phase": "start", "status": "gsm8k: start"}, 0.0)
    eta.observe("base", {**ev, "eval_phase": "generate", "eval_done": 5, "eval_total": 10}, 5.0)
    eta.observe("base", {**ev, "eval_phase": "done", "eval_done": 10, "eval_total": 10}, 20.0)
    eta.finish("base")
    # 2 s an item; training not timed yet: a lower bound from the evals alone
    first = eta.estimate(20.0)
    assert first.lower_bound and first.seconds == 40.0 and "not timed yet: training" in first.text
    eta.observe("r1", {"status": "stage training", "stage_id": "s1"}, 20.0)
    eta.observe("r1", {"status": "stage training", "stage_id": "s1", "step": 5,
                       "total_steps": 10}, 70.0)  # half of s1's 1,000 tokens in 50 s
    now = eta.estimate(70.0)
    # 3,500 tokens left at 10 tok/s, 20 eval items at 2 s
    assert not now.lower_bound and now.seconds == 350.0 + 40.0
    assert now.text.startswith("ETA 6m30s (3,500 tokens to train at 10 tok/s, 20 eval items")
    eta.observe("r1", {"status": "stage trained", "stage_id": "s1"}, 120.0)
    assert eta.tokens_left() == 3000 and eta.train_rate(120.0) == 10.0


def test_the_sweep_eta_divides_by_the_runs_at_once_and_ends_at_zero():
    eta = _eta_work()
    eta.work = type(eta.work)(**{**eta.work.__dict__, "concurrency": 2})
    eta.observe("base", {"eval": "gsm8k", "eval_phase": "start"}, 0.0)
    eta.observe("base", {"eval": "gsm8k", "eval_phase": "done", "eval_total": 10}, 10.0)
    eta.observe("r1", {"status": "stage training", "stage_id": "s1"}, 10.0)
    eta.observe("r1", {"status": "stage trained", "stage_id": "s1"}, 110.0)  # 10 tok/s
    # 3,000 tokens (300 s) + 20 items (20 s) over 2 runs at once
    assert eta.estimate(110.0).seconds == 160.0
    for run in ("base", "r1", "r2"):
        eta.finish(run)
    assert eta.estimate(200.0).seconds == 0.0


def test_an_eval_of_unknown_size_is_named_until_a_report_gives_its_size():
    from sweep.execution.eta import SweepEta, SweepWork

    task = "lm-eval:dmt_tool_calls"  # the plan cannot count an lm-eval task's items
    eta = SweepEta(SweepWork(stage_tokens={}, run_stages={"base": (), "r1": ()},
                             run_items={"base": {task: None}, "r1": {task: None}}))
    assert eta.estimate(0.0).text == f"ETA measuring (size unknown: {task})"
    ev = {"eval": task, "stage_id": None}
    eta.observe("base", {**ev, "eval_phase": "generate", "eval_done": 50, "eval_total": 200}, 0.0)
    eta.observe("base", {**ev, "eval_phase": "done", "eval_done": 200, "eval_total": 200}, 100.0)
    eta.finish("base")
    now = eta.estimate(100.0)  # r1's 200 items at the 0.5 s an item measured on base
    assert not now.lower_bound and now.seconds == 100.0 and "200 eval items" in now.text


def test_the_header_carries_the_sweep_eta():
    from sweep.execution.console import console_callback

    class Trial:
        def __init__(self):
            self.config = {"job": {"run_id": "r1", "question": "rq2", "strategy": "mix",
                                   "amounts": ""}}
            self.status = "RUNNING"
            self.trial_id = "trial-r1"

    out: list[str] = []
    eta = _eta_work()
    cb = console_callback(every_s=0.0, emit=out.append, clock=lambda: 5.0, total=3, eta=eta)
    trial = Trial()
    cb.on_trial_result(1, [trial], trial, {"stage": "1/1", "phase": "stage 1",
                                               "status": "stage training", "stage_id": "s1"})
    assert out[-1].splitlines()[0].endswith("2 pending; ETA measuring (4,000 tokens to train, "
                                            "30 eval items) ==")


def test_a_trial_reports_its_stages_steps_and_evals_as_the_console_reads_them(monkeypatch):
    from core.contracts import EvalEvent, StageEvent, StepEvent
    from sweep.execution import progress

    reports = []
    monkeypatch.setattr(progress.tune, "report", reports.append)
    p = progress.Progress(stages=2)
    p.on_event(StageEvent("training", 1, 2, "s2", "math=1", "/x"))
    p.on_event(StepEvent(0.5, step=3, total_steps=8))
    p.start_evaluation()
    p.on_event(EvalEvent("gsm8k", 0, 2, "generate", 16, 100))
    stage, step, evaluating, item = reports
    assert (stage["stage"], stage["phase"], stage["stage_id"]) == ("2/2", "stage 2", "s2")
    assert (step["step"], step["total_steps"], step["loss"]) == (3, 8, 0.5)
    assert "stage_id" not in evaluating and evaluating["status"] == "evaluating"
    assert (item["stage"], item["phase"], item["step"], item["total_steps"]) == (
        "eval 1/2", "eval gsm8k generate", 16, 100)
    assert (item["eval"], item["eval_phase"], item["eval_done"], item["eval_total"]) == (
        "gsm8k", "generate", 16, 100)
