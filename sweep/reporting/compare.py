"""Paired comparisons between runs, item by item, from the per-item outcomes of a ResultSet.

Two runs scored on the same items are compared on those items only (a partial overlap is
stated; under half of either run's items it is refused): exact McNemar for binary outcomes, a
paired sign-flip test for scores and log-likelihoods, a paired bootstrap interval. A run
repeated with several seeds is compared over its seeds (evals.stats.compare_seeded: a
two-level bootstrap interval and Welch's t over seeds). A question's report tests a family of
such comparisons and corrects them together (Holm); each Tested knows its family's size.
    python -m sweep.report --storage ./runs/local --compare RUN_A RUN_B
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace

from evals.stats import Comparison, OverlapError, compare_seeded, holm
from sweep.reporting.result_set import ResultSet

ALPHA = 0.05


@dataclass(frozen=True)
class Tested:
    """One comparison of a family: what was compared, the result, and its Holm-adjusted p."""
    family: str  # e.g. "rq2 smollm2_135m: vs base (headline)"
    family_size: int  # tests in the family, which Holm corrects together
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
        return {"family": self.family, "family_size": self.family_size, "a": self.label_a,
                "b": self.label_b, "runs_a": list(self.runs_a), "runs_b": list(self.runs_b),
                **shown(self.result).to_dict(), "p_holm": self.p_holm,
                "significant": self.significant}


def kind_of(results: ResultSet, run_ids: Sequence[str], metric: str) -> str:
    for r in results.rows:
        if r["run_id"] in run_ids and r["metric"] == metric:
            return r["kind"]
    raise ValueError(f"runs {list(run_ids)} have no result for {metric}")


def compare_cells(results: ResultSet, runs_a: Sequence[str], runs_b: Sequence[str], metric: str,
                  names: tuple[str, str] | None = None) -> Comparison:
    """B minus A on one metric; each side's runs are its seeds."""
    names = names or (",".join(runs_a), ",".join(runs_b))
    seeds_a, seeds_b = results.seeds_of(list(runs_a), metric), results.seeds_of(list(runs_b),
                                                                                 metric)
    if not seeds_a or not seeds_b:
        raise ValueError(f"{metric}: no per-item outcomes for {names[0] if not seeds_a else names[1]}")
    return compare_seeded(seeds_a, seeds_b, metric, kind_of(results, list(runs_a) + list(runs_b),
                                                            metric), names)


def compare_runs(results: ResultSet, runs_a: Sequence[str], runs_b: Sequence[str],
                 metrics: Sequence[str] | None = None) -> list[Comparison]:
    """B minus A for every metric both have per-item outcomes for (or the named ones)."""
    if metrics is None:
        have_a = set().union(*(results.items(r) for r in runs_a))
        have_b = set().union(*(results.items(r) for r in runs_b))
        metrics = sorted(have_a & have_b)
        if not metrics:
            raise ValueError(f"runs {list(runs_a)} and {list(runs_b)} share no scored metric")
    return [compare_cells(results, runs_a, runs_b, m) for m in metrics]


def shown(c: Comparison) -> Comparison:
    """The comparison in the table's units (percentage points for binary metrics)."""
    if c.kind != "binary":
        return c
    return replace(c, mean_a=100 * c.mean_a, mean_b=100 * c.mean_b, diff=100 * c.diff,
                   ci_low=100 * c.ci_low, ci_high=100 * c.ci_high,
                   per_seed=tuple(shown(s) for s in c.per_seed))


def tested_family(family: str, pairs, results: ResultSet) -> list[Tested]:
    """pairs: [(label_a, runs_a, label_b, runs_b, metric)]; Holm over the whole family. A pair
    that cannot be compared (no items, too little overlap) is noted and left out of the family."""
    compared = []
    for label_a, runs_a, label_b, runs_b, metric in pairs:
        try:
            c = compare_cells(results, runs_a, runs_b, metric, (label_a, label_b))
        except (FileNotFoundError, OverlapError, ValueError) as e:
            print(f"note: {family}: {label_b} vs {label_a} on {metric} not compared ({e})",
                  file=sys.stderr)
            continue
        compared.append((label_a, tuple(runs_a), label_b, tuple(runs_b), c))
    adjusted = holm([c.p for *_, c in compared])
    return [Tested(family, len(compared), la, lb, ra, rb, c, p)
            for (la, ra, lb, rb, c), p in zip(compared, adjusted, strict=True)]


def format_comparison(c: Comparison, label_a: str = "A", label_b: str = "B") -> str:
    c = shown(c)
    unit = " pp" if c.kind == "binary" else ""
    extra = (f"; only {label_b} right {c.b_only}, only {label_a} right {c.a_only}"
             if c.b_only is not None else "")
    seeds = f", {c.seeds_a} vs {c.seeds_b} seeds" if c.seeds_a > 1 or c.seeds_b > 1 else ""
    partial = (f"; not compared: {c.n_only_a} items only {label_a} scored, {c.n_only_b} only "
               f"{label_b}" if c.partial else "")
    return (f"{c.metric}: {label_b} {c.mean_b:.3g} vs {label_a} {c.mean_a:.3g}, difference "
            f"{c.diff:+.3g}{unit} [95% CI {c.ci_low:+.3g}, {c.ci_high:+.3g}], p = {c.p:.3g} "
            f"({c.test}, n = {c.n} paired items{seeds}{extra}{partial})")
