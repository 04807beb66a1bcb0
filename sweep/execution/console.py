"""The sweep's own console: a progress table (run, question, stage i/n or eval i/n, step/total
or items/total, loss, ETA) under a header with the whole sweep's ETA (sweep/execution/eta.py),
printed by a Tune callback in the driver at most every ~15 s, in place of Tune's status dumps
and Ray's worker logs (`--verbose` brings those back; sweep/execution/driver.py, tuner.py).
The table is a pure function of `TrialView`s, so tests render it from synthetic results.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ray.tune import Callback

from sweep.execution.eta import SweepEta, duration

COLUMNS = ("run", "question", "what", "stage", "step/total", "loss", "ETA", "status")
TITLE = "sweep progress"
REFRESH_S = 15.0


@dataclass
class TrialView:
    """What the console knows of one trial, from its config and its latest reported metrics."""

    run: str
    question: str
    what: str = ""  # strategy and grid point, "mixed f=1/64"
    state: str = "PENDING"  # Tune's trial state
    stage: str = ""  # "i/n" of the stages, or "eval i/n"
    phase: str | None = None  # what step/total count: a stage, or an eval's phase
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    status: str = ""  # the trial's own: "stage training", "evaluating", "done", ...
    eta_s: float | None = None  # of the stage or eval phase at hand, from its rate so far
    _since: tuple[float, int] | None = None  # (time, step) the rate is measured from


def view_of(config: Mapping) -> TrialView:
    job = config.get("job", {})
    return TrialView(run=job.get("run_id", "?"), question=job.get("question", ""),
                     what=f"{job.get('strategy', '')} {job.get('amounts', '')}".strip())


def update_view(view: TrialView, result: Mapping, now: float) -> None:
    """Fold one reported result into the view; the ETA extrapolates the rate of the phase at
    hand (a stage's steps, an eval's items)."""
    if result.get("phase") is not None and result["phase"] != view.phase:
        view.phase, view.loss, view._since, view.eta_s = result["phase"], None, None, None
    view.state = "RUNNING"
    view.run = result.get("run_id") or view.run  # a search trial learns its run as it starts
    view.what = result.get("what") or view.what
    view.stage = result.get("stage", view.stage)
    view.status = result.get("status", view.status)
    view.step, view.total_steps = result.get("step"), result.get("total_steps")
    if result.get("loss") is not None:
        view.loss = float(result["loss"])
    if view.step is None or not view.total_steps:
        view.eta_s = None
        return
    if view._since is None or view.step < view._since[1]:
        view._since = (now, view.step)
    t0, s0 = view._since
    if view.step > s0:
        view.eta_s = (view.total_steps - view.step) * (now - t0) / (view.step - s0)


def _cells(v: TrialView) -> tuple[str, ...]:
    steps = "-" if v.step is None else f"{v.step}/{v.total_steps or '?'}"
    loss = "-" if v.loss is None else f"{v.loss:.4f}"
    status = {"PENDING": "pending", "ERROR": "FAILED"}.get(v.state, v.status or v.state.lower())
    return (v.run, v.question, v.what, v.stage or "-", steps, loss, duration(v.eta_s), status)


def render_table(views: Iterable[TrialView], clock: str = "", total: int | None = None,
                 eta: str = "") -> str:
    """A fixed-width table, one line per run, under a line counting runs by state and giving
    the sweep's ETA. `total`: runs in the sweep (Tune creates a trial only when it can start,
    so some may not show yet)."""
    views = list(views)
    states = {s: sum(v.state == s for v in views) for s in ("RUNNING", "TERMINATED", "ERROR",
                                                           "PENDING")}
    waiting = states["PENDING"] + max(0, (total or 0) - len(views))
    head = (f"== {TITLE}{' ' + clock if clock else ''}: {max(total or 0, len(views))} runs, "
            f"{states['RUNNING']} running, {states['TERMINATED']} done, {states['ERROR']} failed, "
            f"{waiting} pending{'; ' + eta if eta else ''} ==")
    rows = [COLUMNS, *(_cells(v) for v in views)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join([head, *lines])


def console_callback(every_s: float = REFRESH_S, emit: Callable[[str], None] | None = None,
                     clock: Callable[[], float] = time.monotonic, total: int | None = None,
                     eta: SweepEta | None = None):
    """A Tune callback (it runs in the driver process) that prints the table at most every
    `every_s` seconds while results arrive, and once more when the sweep ends. `eta`: the
    sweep's work and rates, for the header's ETA."""
    emit = emit or (lambda text: print(text, flush=True))

    class ConsoleTable(Callback):
        def __init__(self):
            super().__init__()
            self.views: dict[str, TrialView] = {}
            self.last = float("-inf")

        def _view(self, trial) -> TrialView:
            # by trial: a search trial learns its run id only once it has started
            if trial.trial_id not in self.views:
                self.views[trial.trial_id] = view_of(trial.config)
            return self.views[trial.trial_id]

        def _sync(self, trials) -> None:
            for t in trials:
                view = self._view(t)
                view.state = t.status if t.status in ("PENDING", "TERMINATED", "ERROR") \
                    else view.state
                if t.status == "TERMINATED":
                    view.eta_s = None

        def _show(self, trials, force: bool = False) -> None:
            self._sync(trials)
            now = clock()
            if force or now - self.last >= every_s:
                self.last = now
                header = eta.estimate(now).text if eta is not None else ""
                emit(render_table(self.views.values(), time.strftime("%H:%M:%S"), total,
                                  header))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            view = self._view(trial)
            update_view(view, result, clock())
            if eta is not None:
                eta.observe(view.run, result, clock())
            self._show(trials)

        def on_trial_complete(self, iteration, trials, trial, **info):
            if eta is not None:
                eta.finish(self._view(trial).run)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._view(trial).state = "ERROR"
            self._show(trials)

        def on_experiment_end(self, trials, **info):
            self._show(trials, force=True)

    return ConsoleTable()
