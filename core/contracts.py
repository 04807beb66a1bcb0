"""What crosses package and process boundaries during a run, as types: a stage's manifest
(written to storage as `stages/<id>/manifest.json`), its progress events (sent from the task that
trains to the trial that reports to Tune, or printed by the finetune command), per-step loss
events, and an evaluation's progress (which eval, what it is doing, items done of total). Each is
serialised here and nowhere else: `to_dict()` / `from_dict()`.
    python -c "from core.contracts import StageEvent; print(StageEvent('trained', 0, 2, 'ab', 'math=1', '/x', wall_s=3.0).to_dict())"
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

StageStatus = Literal["waiting", "training", "trained", "reused"]
STAGE_STATUSES = ("waiting", "training", "trained", "reused")


@dataclass(frozen=True)
class StageEvent:
    """One stage changed state: `training` then `trained` (we hold its lease), `waiting` (another
    process holds it), `reused` (its manifest exists)."""

    status: StageStatus
    index: int  # 0-based position of the stage in its run
    of: int  # stages in the run
    stage_id: str
    recipe: str  # format_recipe of what the stage trains on
    path: str  # the stage folder (local path or URI)
    wall_s: float | None = None  # trained: the stage's wall time
    waited_s: float | None = None  # reused after waiting for another process
    holder: Mapping[str, Any] | None = None  # waiting: the lease holder (host, pid, ...)

    def __post_init__(self):
        if self.status not in STAGE_STATUSES:
            raise ValueError(f"stage status {self.status!r} is not one of {STAGE_STATUSES}")

    def to_dict(self) -> dict:
        return {"event": "stage", **_plain(dataclasses.asdict(self))}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageEvent:
        return cls(**{k: v for k, v in data.items() if k != "event"})


@dataclass(frozen=True)
class StepEvent:
    """One optimizer step's loss, forwarded from Ray Train to the trial (or any listener)."""

    loss: float
    step: int | None = None
    epoch: int | None = None
    total_steps: int | None = None  # of the stage (trainers.loop.StepSchedule.total_steps)

    def to_dict(self) -> dict:
        return {"event": "step", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepEvent:
        return cls(**{k: v for k, v in data.items() if k != "event"})


EVAL_PHASES = ("start", "loading", "generate", "score", "sandbox", "done", "cached")


@dataclass(frozen=True)
class EvalEvent:
    """A run's evaluation moved on: eval `index` of `of` (`name`) is in `phase` with `done` of
    `total` items (None: not known yet). `generate`, `score` (reference likelihoods, held-out
    loss) and `sandbox` (HumanEval's tests) count items; `done` and `cached` close the eval."""

    name: str
    index: int  # 0-based among the run's evals
    of: int
    phase: str
    done: int = 0
    total: int | None = None

    def __post_init__(self):
        if self.phase not in EVAL_PHASES:
            raise ValueError(f"eval phase {self.phase!r} is not one of {EVAL_PHASES}")

    def to_dict(self) -> dict:
        return {"event": "eval", **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalEvent:
        return cls(**{k: v for k, v in data.items() if k != "event"})


def event_from_dict(data: Mapping[str, Any]) -> StageEvent | StepEvent | EvalEvent:
    kinds = {"stage": StageEvent, "step": StepEvent, "eval": EvalEvent}
    kind = data.get("event")
    if kind not in kinds:
        raise ValueError(f"unknown event kind {kind!r} in {dict(data)}")
    return kinds[kind].from_dict(data)


@dataclass(frozen=True)
class StageManifest:
    """Everything known about a finished stage; its presence in storage means "complete"."""

    stage_id: str
    parent_id: str
    model: str  # the run's base model (preset name, HF id or path)
    model_source: str  # what this stage started from: the base model or the parent's folder
    recipe: str
    recipe_exact: Any  # identity.canonical_recipe: exact amounts as strings
    data_seed: int
    settings: dict  # TrainSettings.to_dict()
    settings_fingerprint: dict
    sources: dict  # source name -> what identifies it in the stage id
    code_version: int
    # How the weights were trained ("fp32", "bf16-autocast", "bf16-deepspeed": fp32 masters
    # in every case), as the worker reports it, else as the settings resolve.
    precision: str
    saved_dtype: str | None  # read from the saved safetensors headers: "float32" expected
    selected: dict | None  # source -> records selected
    used: dict | None  # source -> records trained on (after formatting rejects)
    rejected: dict | None  # source -> {"reading": {reason: n}, "formatting": {reason: n}}
    data_report: dict
    tokens_seen: int
    loss_curve: list
    tokens_per_s: float
    wall_s: float  # the fit alone
    steps: int
    metrics: dict
    workers: int
    use_gpu: bool
    trained_on: str  # host name
    stage_wall_s: float = 0.0  # the whole stage: data, fit, copy
    # Where the fit ran, one entry per (re)start: {"from_step", "nodes", "started_at"}; a
    # preempted stage has two or more, the later ones from its checkpoint's step.
    placements: list = field(default_factory=list)
    finished_at: float | None = None  # unix s, when the final checkpoint was written
    extra: dict = field(default_factory=dict)  # keys a newer writer added; kept, not lost

    def to_dict(self) -> dict:
        out = _plain({f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                      if f.name != "extra"})
        return {**_plain(self.extra), **out}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StageManifest:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        optional = {f.name for f in dataclasses.fields(cls)
                    if f.default is not dataclasses.MISSING
                    or f.default_factory is not dataclasses.MISSING}
        missing = sorted(n for n in names - set(data) - optional)
        if missing:
            raise ValueError(f"manifest of stage {data.get('stage_id')!r} lacks {missing}")
        return cls(**{k: v for k, v in data.items() if k in names},
                   extra={k: v for k, v in data.items() if k not in names})


def _plain(obj: Any) -> Any:
    """JSON-able copy: dataclasses, objects with to_dict(), numpy scalars, tuples, paths."""
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None  # JSON has no NaN or inf
    if hasattr(obj, "to_dict"):
        return _plain(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item"):  # numpy / torch scalars
        return _plain(obj.item())
    return str(obj)


to_plain = _plain
