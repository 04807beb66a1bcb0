"""Paired comparisons between runs, item by item, from the per-item outcomes in the storage.

Two runs scored on the same items are compared on those items only: exact McNemar for
correct/incorrect outcomes, a paired sign-flip test for scores and log-likelihoods, and a paired
bootstrap interval for the difference. A run repeated with several seeds is pooled first (each
item's outcome averaged over the seeds). A question's report tests a family of such
comparisons and corrects them together (Holm).
    python -m sweep.report --storage ./runs/local --compare RUN_A RUN_B
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

from core.storage import Storage
from evals.stats import Comparison, compare_paired, holm
from sweep.reporting.results import PERCENT, read_items

ALPHA = 0.05


@dataclass(frozen=True)
class Tested:
    """One comparison of a family: what was compared, the result, and its Holm-adjusted p."""
    family: str  # e.g. "rq2: vs base", "rq2: mixed vs single"
    label_a: str
    label_b: str
    runs_a: tuple[str, ...]
    runs_b: tuple[str, ...]
    result: Comparison
    p_holm: float

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA

    def to_dict(self) -> dict:
        return {"family": self.family, "a": self.label_a, "b": self.label_b,
                "runs_a": list(self.runs_a), "runs_b": list(self.runs_b),
                **shown(self.result).to_dict(), "p_holm": self.p_holm,
                "significant": self.significant}


def pooled_items(storage: Storage, run_ids: Sequence[str], metric: str) -> dict[str, float]:
    """One value per item: the mean over the runs (seeds) that scored it."""
    sums: dict[str, list[float]] = {}
    for run_id in run_ids:
        for item, value in read_items(storage, run_id).get(metric, {}).items():
            sums.setdefault(item, []).append(value)
    return {item: sum(v) / len(v) for item, v in sums.items()}


def compare_runs(storage: Storage | str, runs_a: Sequence[str], runs_b: Sequence[str],
                 metrics: Sequence[str] | None = None) -> list[Comparison]:
    """B minus A for every metric both have per-item outcomes for (or the named ones)."""
    storage = storage if isinstance(storage, Storage) else Storage(storage)
    if metrics is None:
        have_a = set().union(*(read_items(storage, r) for r in runs_a))
        have_b = set().union(*(read_items(storage, r) for r in runs_b))
        metrics = sorted(have_a & have_b)
        if not metrics:
            raise ValueError(f"runs {list(runs_a)} and {list(runs_b)} share no scored metric")
    return [compare_paired(pooled_items(storage, runs_a, m), pooled_items(storage, runs_b, m), m)
            for m in metrics]


def shown(c: Comparison) -> Comparison:
    """The comparison in the table's units (percentage points for accuracies)."""
    if c.metric not in PERCENT:
        return c
    return replace(c, mean_a=100 * c.mean_a, mean_b=100 * c.mean_b, diff=100 * c.diff,
                   ci_low=100 * c.ci_low, ci_high=100 * c.ci_high)


def tested_family(family: str, pairs, storage: Storage) -> list[Tested]:
    """pairs: [(label_a, runs_a, label_b, runs_b, metric)]; Holm over the whole family."""
    results = []
    for label_a, runs_a, label_b, runs_b, metric in pairs:
        try:
            (c,) = compare_runs(storage, runs_a, runs_b, [metric])
        except (FileNotFoundError, ValueError) as e:
            print(f"note: {family}: {label_b} vs {label_a} on {metric} not compared ({e})",
                  file=sys.stderr)
            continue
        results.append((label_a, tuple(runs_a), label_b, tuple(runs_b), c))
    adjusted = holm([c.p for *_, c in results])
    return [Tested(family, la, lb, ra, rb, c, p)
            for (la, ra, lb, rb, c), p in zip(results, adjusted, strict=True)]


def format_comparison(c: Comparison, label_a: str = "A", label_b: str = "B") -> str:
    c = shown(c)
    unit = " pp" if c.metric in PERCENT else ""
    extra = (f"; only {label_b} right {c.b_only}, only {label_a} right {c.a_only}"
             if c.b_only is not None else "")
    return (f"{c.metric}: {label_b} {c.mean_b:.3g} vs {label_a} {c.mean_a:.3g}, difference "
            f"{c.diff:+.3g}{unit} [95% CI {c.ci_low:+.3g}, {c.ci_high:+.3g}], p = {c.p:.3g} "
            f"({c.test}, n = {c.n} paired items{extra})")
