"""The whole sweep's ETA: what the plan says is left (tokens of the stages still to train, items
of the evaluations still to run) at the rates measured so far in this sweep (training tokens per
second; seconds per item of each eval). Pure: the console feeds it the trials' reports with a
clock, so tests drive it with synthetic ones.

Rates are per run in flight; the time left is divided by the runs that can go at once. An eval
not timed yet (no run has finished it) leaves the estimate a lower bound, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SweepWork:
    """What a sweep has left to do, from its plan: planned tokens of each stage not yet in storage
    (a stage shared by runs counted once), and each pending run's stages and eval items."""

    stage_tokens: Mapping[str, int]
    run_stages: Mapping[str, tuple[str, ...]]
    run_items: Mapping[str, Mapping[str, int | None]]
    concurrency: int = 1


@dataclass
class _Timer:
    started: float
    done: float = 0.0  # stage: fraction of its steps; eval: items
    total: float | None = None


@dataclass
class Estimate:
    seconds: float | None  # None: nothing measured yet to go on
    lower_bound: bool  # some work has no measured rate yet
    text: str


@dataclass
class SweepEta:
    work: SweepWork
    trained: set[str] = field(default_factory=set)
    train_tokens: float = 0.0  # measured: tokens of stages trained in this sweep ...
    train_s: float = 0.0  # ... and the seconds they took
    eval_items: dict[str, float] = field(default_factory=dict)  # eval -> items timed
    eval_s: dict[str, float] = field(default_factory=dict)  # eval -> their seconds
    stages: dict[str, _Timer] = field(default_factory=dict)  # stage id -> in flight
    evals: dict[tuple[str, str], _Timer] = field(default_factory=dict)  # (run, eval) in flight
    evals_done: set[tuple[str, str]] = field(default_factory=set)
    runs_done: set[str] = field(default_factory=set)
    sizes: dict[str, float] = field(default_factory=dict)  # eval -> items a run, as reported

    def observe(self, run: str, result: Mapping, now: float) -> None:
        """Fold one trial report (sweep/execution/progress.py's keys) into the measurements."""
        status = str(result.get("status", ""))
        stage = result.get("stage_id")
        if stage and status == "stage training":
            timer = self.stages.setdefault(stage, _Timer(now))
            if result.get("step") and result.get("total_steps"):
                timer.done = result["step"] / result["total_steps"]
        elif stage and status in ("stage trained", "stage reused"):
            self._stage_over(stage, now, trained=status == "stage trained")
        if result.get("eval"):
            self._eval(run, result, now)

    def _stage_over(self, stage: str, now: float, trained: bool) -> None:
        timer = self.stages.pop(stage, None)
        if trained and timer is not None and stage not in self.trained:
            self.train_tokens += self.work.stage_tokens.get(stage, 0)
            self.train_s += now - timer.started
        self.trained.add(stage)

    def _eval(self, run: str, result: Mapping, now: float) -> None:
        key, phase = (run, result["eval"]), result.get("eval_phase")
        timer = self.evals.setdefault(key, _Timer(now))
        if result.get("eval_total"):  # what the plan could not know (an lm-eval task's size)
            self.sizes[key[1]] = result["eval_total"]
        if phase == "generate" or (phase == "score" and not timer.total):
            timer.done, timer.total = result.get("eval_done") or 0, result.get("eval_total")
        if phase in ("done", "cached"):
            self.evals.pop(key, None)
            self.evals_done.add(key)
            if phase == "done" and result.get("eval_total"):
                self.eval_items[key[1]] = self.eval_items.get(key[1], 0) + result["eval_total"]
                self.eval_s[key[1]] = self.eval_s.get(key[1], 0) + now - timer.started

    def finish(self, run: str) -> None:
        self.runs_done.add(run)
        for stage in self.work.run_stages.get(run, ()):
            self.stages.pop(stage, None)
            self.trained.add(stage)

    # ---- the estimate ------------------------------------------------------------------------

    def train_rate(self, now: float) -> float | None:
        """Tokens per second per run in flight: stages trained here, and those in flight."""
        tokens, seconds = self.train_tokens, self.train_s
        for stage, timer in self.stages.items():
            tokens += timer.done * self.work.stage_tokens.get(stage, 0)
            seconds += now - timer.started
        return tokens / seconds if tokens > 0 and seconds > 0 else None

    def seconds_per_item(self, name: str, now: float) -> float | None:
        items, seconds = self.eval_items.get(name, 0.0), self.eval_s.get(name, 0.0)
        for (_, eval_name), timer in self.evals.items():
            if eval_name == name and timer.done:
                items, seconds = items + timer.done, seconds + now - timer.started
        return seconds / items if items > 0 else None

    def tokens_left(self) -> float:
        left = 0.0
        for stage, tokens in self.work.stage_tokens.items():
            if stage not in self.trained:
                left += tokens * (1 - (self.stages[stage].done if stage in self.stages else 0))
        return left

    def items_left(self) -> dict[str, float | None]:
        """Items still to score per eval; None for an eval whose size neither the plan nor any
        report has given yet (the estimate is then a lower bound, and names it)."""
        out: dict[str, float | None] = {}
        for run, items in self.work.run_items.items():
            if run in self.runs_done:
                continue
            for name, planned in items.items():
                key, n = (run, name), planned or self.sizes.get(name)
                if key in self.evals_done:
                    continue
                if not n:
                    out.setdefault(name, None)
                    continue
                done = self.evals[key].done if key in self.evals else 0
                out[name] = (out.get(name) or 0) + max(0.0, n - done)
        return out

    def estimate(self, now: float) -> Estimate:
        pending = [r for r in self.work.run_stages if r not in self.runs_done]
        if not pending:
            return Estimate(0.0, False, "ETA 0s")
        parallel = max(1, min(self.work.concurrency, len(pending)))
        seconds, unknown, parts = 0.0, [], []
        tokens = self.tokens_left()
        if tokens:
            rate = self.train_rate(now)
            if rate is None:
                unknown.append("training")
            else:
                seconds += tokens / rate
            parts.append(f"{_count(tokens)} tokens to train"
                         + (f" at {rate:,.0f} tok/s" if rate else ""))
        items = self.items_left()
        for name, n in sorted(items.items()):
            per = self.seconds_per_item(name, now)
            if per is None or n is None:
                unknown.append(name)
            else:
                seconds += n * per
        sized = [n for n in items.values() if n is not None]
        if sized:
            parts.append(f"{_count(sum(sized))} eval items")
        unsized = sorted(name for name, n in items.items() if n is None)
        if unsized:
            parts.append(f"size unknown: {', '.join(unsized)}")
        measured = seconds > 0 or not unknown
        total = seconds / parallel if measured else None
        head = ("ETA measuring" if total is None else
                f"ETA {'≥ ' if unknown else ''}{duration(total)}")
        tail = f"; not timed yet: {', '.join(unknown)}" if unknown and total is not None else ""
        inner = ", ".join(parts) + tail
        return Estimate(total, bool(unknown), f"{head} ({inner})" if inner else head)


def _count(x: float) -> str:
    return f"{x / 1000:.1f}k" if x >= 10_000 else f"{x:,.0f}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"
