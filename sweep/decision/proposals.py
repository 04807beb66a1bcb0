"""Candidates, the predicted best per ability, and the Pareto set across abilities.

The candidates are compositions of the strategies and groups the runs used (a fit cannot
speak for a strategy it never saw): every combination of levels (or a seeded sample of them
when there are more than `MAX_CANDIDATES`), each source present at a level or left out, and
DMT at every level of k. Each proposal says how far it lies from what was sampled: the
nearest run's composition and its distance in doublings (the largest |log2 ratio| of an
amount; a source present in one and absent in the other counts as `ABSENT_DISTANCE`), and
which sources it takes beyond the amounts any run took.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sweep.decision.observations import Z95, Observations
from sweep.study.candidates import BASE, LEVELS, Composition

MAX_CANDIDATES = 4000
ABSENT_DISTANCE = 8.0  # a source in one and not the other: as far as 1 is from 1/256
TIE = 1e-3  # Pareto: predictions this close (of a metric's predicted range) are alike


def candidates(observed: Sequence[Composition], seed: int = 0) -> list[Composition]:
    """The observed compositions plus the space around them (see the module's docstring)."""
    sources = sorted({s for c in observed for s in c.sources})
    out = {c.key(): c for c in observed if c.strategy != BASE}
    rng = np.random.default_rng(seed)
    shapes = {(c.strategy, c.order, c.specialized, c.general) for c in observed
              if c.strategy != BASE}
    for strategy, order, specialized, general in sorted(shapes, key=str):
        names = list(order) if strategy == "sequential" else (
            [*specialized, general] if strategy in ("mixed_sequential", "dmt") else sources)
        optional = strategy == "mix"  # a staged strategy needs every one of its sources
        ks = LEVELS if strategy == "dmt" else (None,)
        for amounts, k in _amount_sets(names, optional, ks, rng):
            c = Composition.staged(strategy, amounts, k=k, order=order,
                                   specialized=specialized, general=general) \
                if strategy != "mix" else Composition.mix(amounts)
            out.setdefault(c.key(), c)
    return list(out.values())


def _amount_sets(names, optional, ks, rng):
    choices = [(None, *LEVELS) if optional else LEVELS for _ in names]
    total = math.prod(len(c) for c in choices) * len(ks)
    if total <= MAX_CANDIDATES:
        combos = ((a, k) for a in itertools.product(*choices) for k in ks)
    else:
        combos = ((tuple(c[rng.integers(len(c))] for c in choices), ks[rng.integers(len(ks))])
                  for _ in range(MAX_CANDIDATES))
    for levels, k in combos:
        amounts = {n: a for n, a in zip(names, levels) if a is not None}
        if amounts:
            yield amounts, k


def distance(a: Composition, b: Composition) -> float:
    """In doublings: the largest |log2 ratio| over the sources, a source in only one counting
    as ABSENT_DISTANCE; another strategy or k adds the difference in log2 k (or 8)."""
    da, db = dict(a.amounts), dict(b.amounts)
    far = 0.0
    for s in set(da) | set(db):
        if s in da and s in db:
            far = max(far, abs(math.log2(da[s] / db[s])))
        else:
            far = max(far, ABSENT_DISTANCE)
    if a.strategy != b.strategy or a.order != b.order:
        far = max(far, ABSENT_DISTANCE)
    elif a.k is not None and b.k is not None:
        far = max(far, abs(math.log2(a.k / b.k)))
    return far


def outside(c: Composition, observed: Sequence[Composition],
            run_ids: Mapping[str, Sequence[str]]) -> dict:
    """How far `c` lies from the sampled region."""
    nearest = min(observed, key=lambda o: distance(c, o))
    beyond = []
    for source, amount in c.amounts:
        seen = [o.amount_of(source) for o in observed if o.amount_of(source) is not None]
        if not seen or not min(seen) <= amount <= max(seen):
            beyond.append(source)
    return {"sampled": distance(c, nearest) == 0, "nearest": nearest.key(),
            "nearest_runs": list(run_ids.get(nearest.key(), ())),
            "doublings_from_nearest": distance(c, nearest), "beyond_sampled_amounts": beyond}


@dataclass(frozen=True)
class Predicted:
    value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


def training_tokens(comp: Composition, source_tokens: Mapping[str, float] | None) -> float:
    """What a composition costs to train: each stage's amounts (fractions: the candidate space
    holds no counts) times the sources' tokens, 1 a source when the sizes are unknown."""
    tokens = source_tokens or {}
    return sum(float(a) * tokens.get(s, 1.0) for stage in comp.stages() for s, a in stage.recipe)


def predictions(models: Mapping[str, object], comps: Sequence[Composition]) -> dict:
    """metric -> (means, standard errors) over `comps`, by each metric's chosen model."""
    return {m: model.predict(comps) for m, model in models.items()}


def best(metric: str, preds: dict, obs: Observations) -> int:
    mean = preds[metric][0]
    return int(np.argmax(mean if obs.higher_is_better else -mean))


def predicted_at(i: int, preds: dict,
                 bounds: Mapping[str, tuple[float, float]] | None = None) -> dict[str, Predicted]:
    """Each metric's prediction at candidate i with its 95% interval, both held inside the
    metric's `bounds` where it has them (a share in percent: 0-100): a fit's extrapolation
    knows nothing of the scale's ends, and an accuracy below 0 is no prediction at all."""
    out = {}
    for m, (mean, se) in preds.items():
        low, high = (bounds or {}).get(m, (-math.inf, math.inf))
        value, half = float(mean[i]), Z95 * float(se[i])
        out[m] = Predicted(*(min(high, max(low, v)) for v in (value, value - half, value + half)))
    return out


def bounds_of(obs: Observations) -> tuple[float, float]:
    """A metric's scale: a binary metric is a share in percent; others are left unbounded."""
    return (0.0, 100.0) if obs.kind == "binary" else (-math.inf, math.inf)


def pareto(preds: dict, higher: Mapping[str, bool], costs: Sequence[float] | None = None,
           limit: int = 12) -> list[int]:
    """Indices of the non-dominated candidates (by predicted means, each metric oriented so
    that more is better), at most `limit` of them spread over the first metric's range.
    Candidates predicted alike (within `TIE` of each metric's predicted range) are one point
    of the front, stood for by the cheapest (`costs`, e.g. training tokens): a fit that
    ignores a source predicts the same for every amount of it, and listing each amount would
    fill the set with compositions that differ only in data the fit says does nothing."""
    metrics = list(preds)
    if len(metrics) < 2:
        return []
    values = np.stack([preds[m][0] * (1 if higher[m] else -1) for m in metrics], axis=1)
    span = np.ptp(values, axis=0)
    steps = np.round(values / np.where(span > 0, span * TIE, 1.0))  # alike: the same step
    cost = np.zeros(len(values)) if costs is None else np.asarray(costs, dtype=float)
    order = np.lexsort((cost, -steps[:, 0]))  # the first metric descending, then the cheapest
    front: list[int] = []
    for i in order:  # i is dominated, or matched, only by one kept before it
        if not any(np.all(steps[j] >= steps[i]) for j in front):
            front.append(int(i))
    if len(front) <= limit:
        return front
    picks = np.linspace(0, len(front) - 1, limit).round().astype(int)
    return [front[p] for p in sorted(set(picks.tolist()))]
