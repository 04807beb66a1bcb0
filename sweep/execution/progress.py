"""A trial's progress as Tune sees it: which stage, trained or reused, the step of the stage
out of its total, and the latest loss (sweep/execution/console.py turns these into the console's table).

Stage events (core.contracts.StageEvent) and per-step losses (StepEvent) reach the trial
through a queue from the task that trains (sweep/execution/training.py); `Progress` turns them into
`tune.report` calls.
"""

from __future__ import annotations

from ray import tune
from ray.train.v2.api.callback import UserCallback

from core.contracts import StageEvent, StepEvent


class Progress:
    """Reports the trial's state to Tune: which stage, trained or reused, the step of the stage
    being trained out of its total, and the loss. Steps are absent until a stage trains."""

    def __init__(self, stages: int):
        self.stages, self.stage, self.status = stages, 0, "starting"
        self.trained, self.reused = 0, 0
        self.step: int | None = None
        self.total_steps: int | None = None

    def report(self, **extra) -> None:
        steps = {k: v for k, v in (("step", self.step), ("total_steps", self.total_steps))
                 if v is not None}
        tune.report({"stage": f"{self.stage}/{self.stages}", "stage_index": self.stage,
                     "status": self.status, "stages_trained": self.trained,
                     "stages_reused": self.reused, **steps, **extra})

    def on_event(self, event: StageEvent | StepEvent) -> None:
        if isinstance(event, StepEvent):
            self.step = event.step if event.step is not None else self.step
            self.total_steps = event.total_steps or self.total_steps
            self.report(loss=event.loss)
            return
        if event.status in ("training", "waiting", "reused"):  # a new stage: no steps yet
            self.step, self.total_steps = None, None
        self.stage, self.status = event.index + 1, f"stage {event.status}"
        self.trained += event.status == "trained"
        self.reused += event.status == "reused"
        self.report()


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
