"""A trial's progress as Tune sees it: which stage (trained or reused) or which eval, how far
(the stage's step out of its total, the eval's items out of its total), and the latest loss;
sweep/execution/console.py turns these into the console's table and the sweep's ETA.

Events come from the tasks that do the work (sweep/execution/training.py,
sweep/execution/evaluation.py) through a queue (`run_reporting`): stage events
(core.contracts.StageEvent), per-step losses (StepEvent) and evaluation progress (EvalEvent);
`Progress` turns them into `tune.report` calls.
"""

from __future__ import annotations

from collections.abc import Callable

import ray
from ray import tune
from ray.train.v2.api.callback import UserCallback
from ray.util.queue import Empty, Queue

from core.contracts import EvalEvent, StageEvent, StepEvent

Event = StageEvent | StepEvent | EvalEvent


class Progress:
    """Reports the trial's state to Tune. `phase` names what the step counts belong to (a stage
    by its index, an eval and its phase), so the console measures a rate per phase; steps are
    absent until a stage trains or an eval counts items."""

    def __init__(self, stages: int):
        self.stages, self.stage, self.status = stages, 0, "starting"
        self.trained, self.reused = 0, 0
        self.stage_label, self.phase, self.stage_id = f"0/{stages}", "start", None
        self.step: int | None = None
        self.total_steps: int | None = None

    def report(self, **extra) -> None:
        steps = {k: v for k, v in (("step", self.step), ("total_steps", self.total_steps),
                                   ("stage_id", self.stage_id)) if v is not None}
        tune.report({"stage": self.stage_label, "stage_index": self.stage, "phase": self.phase,
                     "status": self.status, "stages_trained": self.trained,
                     "stages_reused": self.reused, **steps, **extra})

    def on_event(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            self.step = event.step if event.step is not None else self.step
            self.total_steps = event.total_steps or self.total_steps
            self.report(loss=event.loss)
        elif isinstance(event, EvalEvent):
            self._on_eval(event)
        else:
            self._on_stage(event)

    def _on_stage(self, event: StageEvent) -> None:
        if event.status in ("training", "waiting", "reused"):  # a new stage: no steps yet
            self.step, self.total_steps = None, None
        self.stage, self.status = event.index + 1, f"stage {event.status}"
        self.stage_label, self.phase = f"{self.stage}/{self.stages}", f"stage {self.stage}"
        self.stage_id = event.stage_id
        self.trained += event.status == "trained"
        self.reused += event.status == "reused"
        self.report()

    def _on_eval(self, event: EvalEvent) -> None:
        self.stage_id = None
        self.stage_label = f"eval {event.index + 1}/{event.of}"
        self.phase = f"eval {event.name} {event.phase}"
        self.status = f"{event.name}: {event.phase}"
        self.step, self.total_steps = (event.done, event.total) if event.total else (None, None)
        self.report(eval=event.name, eval_phase=event.phase, eval_done=event.done,
                    eval_total=event.total)

    def start_evaluation(self) -> None:
        self.stage_id, self.status, self.phase = None, "evaluating", "eval"
        self.step = self.total_steps = None
        self.report()


def run_reporting(task_fn: Callable, options: dict, job, on_event: Callable[[Event], None],
                  extra: Callable[[Queue], tuple] = lambda events: ()):
    """`task_fn(job, events, *extra(events))` as a Ray task outside the trial's placement group,
    each event it puts on `events` handed to `on_event` while it runs; its result.

    Tune captures a trial's child tasks into its placement group, which holds only
    `train_driver`: Ray Data's tasks (CPU 1) then could not be scheduled at all, nor an
    evaluation's GPU. A task with an explicit "DEFAULT" strategy is not captured, nor are its
    children. `options`: more Ray options of the task (an evaluation's GPU)."""
    events = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": "DEFAULT"})
    task = ray.remote(task_fn).options(num_cpus=0, scheduling_strategy="DEFAULT", **options)
    ref = task.remote(job, events, *extra(events))
    while True:
        done, _ = ray.wait([ref], timeout=1.0)
        while True:
            try:
                on_event(events.get_nowait())
            except Empty:
                break
        if done:
            return ray.get(ref)


def metrics_forwarder(events):
    """A Ray Train callback that puts each step's loss on the trial's event queue: the stages
    run in a task outside the Tune session, so Tune's own TuneReportCallback cannot be used."""
    class ForwardLoss(UserCallback):
        def after_report(self, run_context, metrics, checkpoint):
            first = metrics[0] if metrics else {}
            if "loss" in first:
                events.put(StepEvent(float(first["loss"]), first.get("step"), first.get("epoch"),
                                     first.get("total_steps")))

    return ForwardLoss()
