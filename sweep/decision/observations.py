"""What the fits learn from: one observation per composition and metric, from result rows.

A run's row becomes a point of the candidate space (sweep/study/candidates.py) with its value
and standard error (from its 95% interval: (high - low) / 3.92); replicate seeds of one
composition are pooled (the mean; its standard error from the spread over seeds, floored by
the items' own). Rows the space cannot describe, rows without a value, and
proxy rows when full runs are asked for are left out and counted by reason.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from sweep.study.candidates import Composition, NotInSpace

Z95 = 1.959964


@dataclass(frozen=True)
class Observation:
    composition: Composition
    value: float
    se: float  # standard error of `value`
    n: int  # items behind each seed's value
    seeds: int
    run_ids: tuple[str, ...]


@dataclass
class Observations:
    """One metric's observations, and what was left out by reason."""
    metric: str
    higher_is_better: bool
    kind: str
    points: list[Observation]
    left_out: Counter = field(default_factory=Counter)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(sorted({s for p in self.points for s in p.composition.sources}))

    def values(self):
        return [p.value for p in self.points]

    @property
    def noise_var(self) -> float:
        """The observations' mean squared standard error (0 when none is known)."""
        known = [p.se ** 2 for p in self.points if p.se is not None and not math.isnan(p.se)]
        return sum(known) / len(known) if known else 0.0


def composition_of_row(row: dict) -> Composition:
    stages = row.get("stages")
    if stages is None:  # results written before stages were recorded: the last stage only
        stages = [row["amounts"]] if row.get("amounts") else []
    return Composition.from_stages(list(stages), row.get("strategy") or "mix", row.get("k"))


def observations(rows: Sequence[dict], proxy: str = "full",
                 model: str | None = None) -> dict[str, Observations]:
    """metric -> its observations, from ResultSet rows of one proxy setting and model (the
    first model found when none is named: compositions are compared within one model)."""
    models = sorted({r["model"] for r in rows})
    model = model or (models[0] if models else None)
    grouped: dict[tuple[str, str], list[tuple[Composition, dict]]] = {}
    by_metric: dict[str, Observations] = {}
    for row in rows:
        metric = row["metric"]
        obs = by_metric.setdefault(metric, Observations(
            metric, bool(row.get("higher_is_better", True)), row.get("kind") or "continuous", []))
        reason = _left_out(row, proxy, model)
        if reason:
            obs.left_out[reason] += 1
            continue
        try:
            composition = composition_of_row(row)
        except NotInSpace:
            obs.left_out["not in the candidate space"] += 1
            continue
        grouped.setdefault((metric, composition.key()), []).append((composition, row))
    for (metric, _), members in grouped.items():
        by_metric[metric].points.append(_pooled(members))
    return {m: o for m, o in by_metric.items() if o.points}


def _left_out(row: dict, proxy: str, model: str | None) -> str | None:
    if (row.get("proxy") or "full") != proxy:
        return f"proxy {row.get('proxy')}"
    if row["model"] != model:
        return f"model {row['model']}"
    if row.get("value") is None or not math.isfinite(row["value"]):
        return "no value (not judged or not measured)"
    return None


def _se(row: dict) -> float:
    low, high = row.get("ci_low"), row.get("ci_high")
    if low is None or high is None:
        return 0.0
    return max(0.0, (high - low) / (2 * Z95))


def _pooled(members: list[tuple[Composition, dict]]) -> Observation:
    composition = members[0][0]
    values = [r["value"] for _, r in members]
    mean = sum(values) / len(values)
    items_se = math.sqrt(sum(_se(r) ** 2 for _, r in members) / len(members))
    se = items_se / math.sqrt(len(values))
    if len(values) > 1:  # the spread over seeds, floored by what the items alone allow
        spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
        se = max(se, spread / math.sqrt(len(values)))
    return Observation(composition, mean, se, int(members[0][1].get("n") or 0), len(values),
                       tuple(r["run_id"] for _, r in members))
