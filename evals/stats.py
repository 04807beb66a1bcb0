"""Uncertainty for every number the project prints: intervals, paired tests, multiple testing.

- `wilson(k, n)`: 95% Wilson score interval for an accuracy or pass@1 (k of n correct).
- `bootstrap_mean_ci(values)`: percentile bootstrap interval of a mean (MT-Bench grades, losses).
- `mcnemar_exact(b, c)`: exact two-sided McNemar p for paired correct/incorrect outcomes.
- `compare_paired(a, b)`: two runs scored on the same items: the difference, its paired bootstrap
  interval and a p value (exact McNemar for 0/1 outcomes, a paired sign-flip test otherwise).
- `holm(pvalues)`: Holm-Bonferroni adjusted p values for a family of comparisons.
Everything is seeded: the same inputs give the same interval on any machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

CONF = 0.95
N_BOOT = 2000


def _z(conf: float) -> float:
    return NormalDist().inv_cdf(0.5 + conf / 2)


def wilson(k: float, n: int, conf: float = CONF) -> tuple[float, float]:
    """Wilson score interval for k successes of n; (0, 1) when n is 0. Unlike the normal
    interval it stays inside [0, 1] and is not empty at 0 of n (a floor result still has an
    upper bound: 0 of 100 is 0.0-3.7%)."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"wilson: k={k} outside [0, n={n}]")
    z = _z(conf)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    lo = 0.0 if k == 0 else max(0.0, centre - half)  # exact ends: no 1e-17 rounding residue
    hi = 1.0 if k == n else min(1.0, centre + half)
    return lo, hi


def bootstrap_mean_ci(values: Sequence[float], conf: float = CONF, n_boot: int = N_BOOT,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over items (resampled with replacement)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - conf) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: b items right only in A, c right only in B. Under H0 each
    discordant item is a fair coin, so p = P(Binomial(b+c, 1/2) at least as extreme)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2.0 ** n
    return min(1.0, 2 * tail)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p values, in the input order (monotone, capped at 1)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Comparison:
    """B minus A on the items both runs scored."""
    metric: str
    n: int  # paired items
    mean_a: float
    mean_b: float
    diff: float  # mean_b - mean_a
    ci_low: float
    ci_high: float
    p: float
    test: str  # "exact McNemar" or "paired sign-flip"
    b_only: int | None = None  # binary outcomes: items only B got right
    a_only: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def is_binary(values) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def compare_paired(a: Mapping[str, float], b: Mapping[str, float], metric: str = "",
                   n_boot: int = N_BOOT, seed: int = 0) -> Comparison:
    """Compare two runs item by item. Only items present in both count; none in common is an
    error (the runs were scored on different sets, and comparing their means would mislead)."""
    items = sorted(set(a) & set(b))
    if not items:
        raise ValueError(f"{metric or 'metric'}: the two runs share no scored item")
    xa = np.array([a[i] for i in items], dtype=np.float64)
    xb = np.array([b[i] for i in items], dtype=np.float64)
    d = xb - xa
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    alpha = (1 - CONF) / 2
    lo, hi = (float(q) for q in np.quantile(boot, [alpha, 1 - alpha]))
    if is_binary(xa) and is_binary(xb):
        b_only, a_only = int(((xb == 1) & (xa == 0)).sum()), int(((xa == 1) & (xb == 0)).sum())
        return Comparison(metric, len(items), float(xa.mean()), float(xb.mean()),
                          float(d.mean()), lo, hi, mcnemar_exact(b_only, a_only),
                          "exact McNemar", b_only, a_only)
    return Comparison(metric, len(items), float(xa.mean()), float(xb.mean()), float(d.mean()),
                      lo, hi, sign_flip_p(d, seed=seed), "paired sign-flip")


def sign_flip_p(d: np.ndarray, n_perm: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired permutation p: under H0 each item's difference is as likely negated.
    Exact enumeration up to 16 items, else Monte Carlo with the (count + 1) / (n + 1) rule."""
    d = np.asarray(d, dtype=np.float64)
    observed = abs(d.mean())
    if d.size == 0 or observed == 0:
        return 1.0
    tol = 1e-12 * max(1.0, observed)
    if d.size <= 16:
        signs = ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1) * 2 - 1
        return float((np.abs((signs * d).mean(axis=1)) >= observed - tol).mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice((-1.0, 1.0), size=(n_perm, d.size))
    hits = int((np.abs((signs * d).mean(axis=1)) >= observed - tol).sum())
    return (hits + 1) / (n_perm + 1)


def interval(values: Sequence[float], seed: int = 0) -> tuple[float, float, float, int]:
    """(mean, lo, hi, n) of per-item values: Wilson for 0/1 outcomes, bootstrap otherwise."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(np.mean(values))
    if is_binary(values):
        lo, hi = wilson(sum(values), n)
    else:
        lo, hi = bootstrap_mean_ci(values, seed=seed)
    return mean, lo, hi, n
