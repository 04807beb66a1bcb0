"""Uncertainty for every number the project prints: intervals, paired tests, seeds, multiple testing.

- `wilson(k, n)`: 95% Wilson score interval for an accuracy or pass@1 (k of n correct).
- `bootstrap_mean_ci(values)`: percentile bootstrap interval of a mean (grades, losses).
- `interval(values, kind)`: the metric's kind decides: Wilson for "binary" (0/1 outcomes),
  bootstrap for "continuous"; never chosen from the values.
- `mcnemar_exact(b, c)`: exact two-sided McNemar p, for any number of discordant pairs.
- `compare_paired(a, b, metric, kind)`: two runs (one seed each) on the items both scored: the
  difference, its paired bootstrap interval and p (exact McNemar for binary outcomes, a paired
  sign-flip test otherwise); a partial overlap is stated, and refused under half of either run.
- `compare_seeded(a_seeds, b_seeds, ...)`: the same with several seeds per side: a two-level
  bootstrap interval and a test over seeds (see its docstring for which and why).
- `seeded_interval(seeds, kind)`: a cell's interval over seeds and items.
- `contrast(cells, weights, kind)`: a weighted sum of cells on shared items (claims' effects).
- `holm(pvalues)`: Holm-Bonferroni adjusted p values for a family of comparisons.
Everything is seeded: the same inputs give the same interval on any machine. A NaN value is an
error naming where it came from, never a number that happens to pass a test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np
from scipy import stats as sp

CONF = 0.95
N_BOOT = 2000
KINDS = ("binary", "continuous")  # 0/1 outcomes per item, or any number per item
MIN_SHARED = 0.5  # a comparison on fewer shared items than this share of either run is refused


class OverlapError(ValueError):
    """Two runs share too few scored items for a paired comparison to mean anything."""


def _z(conf: float) -> float:
    return NormalDist().inv_cdf(0.5 + conf / 2)


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"metric kind {kind!r}: one of {KINDS}")
    return kind


def check_finite(values: Mapping[str, float], where: str) -> None:
    """Every value a number: a NaN is an error naming the run, metric and item (`where`)."""
    for item, value in values.items():
        if value is None or not math.isfinite(float(value)):
            raise ValueError(f"{where}: item {item!r} has value {value!r}, not a number")


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


def interval(values: Sequence[float], kind: str, seed: int = 0) -> tuple[float, float, float, int]:
    """(mean, lo, hi, n) of per-item values: Wilson for a binary metric (its values must be 0 or
    1), bootstrap for a continuous one, whatever values happen to come."""
    check_kind(kind)
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(np.mean(values))
    if kind == "binary":
        if not is_binary(values):
            raise ValueError("a binary metric with values other than 0 and 1")
        lo, hi = wilson(sum(values), n)
    else:
        lo, hi = bootstrap_mean_ci(values, seed=seed)
    return mean, lo, hi, n


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: b items right only in A, c right only in B. Under H0 each
    discordant item is a fair coin, so p = min(1, 2 P(Binomial(b+c, 1/2) <= min(b, c))); the
    binomial tail comes from scipy's regularized incomplete beta, exact in floating point for
    any b + c (the sum of binomial coefficients over 2^n overflowed from 1,024 pairs on)."""
    n = b + c
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * sp.binom.cdf(min(b, c), n, 0.5)))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p values, in the input order (monotone, capped at 1). A NaN p is
    an error: sorted among numbers it would silently raise every p after it to 1."""
    for p in pvalues:
        if p is None or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"holm: p value {p!r} is not in [0, 1]")
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
    """B minus A on the items both runs scored (`n`), pooled over seeds when there are several."""
    metric: str
    n: int  # paired items (n_shared)
    mean_a: float
    mean_b: float
    diff: float  # mean_b - mean_a
    ci_low: float
    ci_high: float
    p: float
    test: str  # "exact McNemar", "paired sign-flip", "Welch t over seeds", ...
    b_only: int | None = None  # binary outcomes, one seed: items only B got right
    a_only: int | None = None
    n_only_a: int = 0  # items only A scored (left out of the comparison)
    n_only_b: int = 0
    seeds_a: int = 1
    seeds_b: int = 1
    kind: str = "continuous"
    per_seed: tuple = field(default_factory=tuple)  # seeds paired by index: their Comparisons

    @property
    def n_shared(self) -> int:
        return self.n

    @property
    def partial(self) -> bool:
        return bool(self.n_only_a or self.n_only_b)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["n_shared"] = self.n
        out["per_seed"] = [c.to_dict() for c in self.per_seed]
        return out


def is_binary(values) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def shared_items(a: Mapping[str, float], b: Mapping[str, float], metric: str,
                 names: tuple[str, str] = ("A", "B")) -> tuple[list[str], int, int]:
    """(shared items, items only A has, items only B has). Fewer shared items than MIN_SHARED
    of either run's is an OverlapError naming both runs."""
    items = sorted(set(a) & set(b))
    only_a, only_b = len(set(a) - set(b)), len(set(b) - set(a))
    for name, own in zip(names, (a, b), strict=True):
        if len(items) < MIN_SHARED * len(own) or not items:
            raise OverlapError(
                f"{metric or 'metric'}: runs {names[0]} and {names[1]} share {len(items)} scored "
                f"items, fewer than half of {name}'s {len(own)}; they were scored on different "
                "sets, and a paired comparison would mislead")
    return items, only_a, only_b


def _bootstrap_ci(d: np.ndarray, n_boot: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    boot = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    alpha = (1 - CONF) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return float(lo), float(hi)


def compare_paired(a: Mapping[str, float], b: Mapping[str, float], metric: str = "",
                   kind: str = "continuous", names: tuple[str, str] = ("A", "B"),
                   n_boot: int = N_BOOT, seed: int = 0) -> Comparison:
    """Compare two runs item by item on the items both scored (items only one scored are
    counted, not compared). Binary: exact McNemar; continuous: a paired sign-flip test."""
    check_kind(kind)
    check_finite(a, f"run {names[0]}, {metric}")
    check_finite(b, f"run {names[1]}, {metric}")
    items, only_a, only_b = shared_items(a, b, metric, names)
    xa = np.array([a[i] for i in items], dtype=np.float64)
    xb = np.array([b[i] for i in items], dtype=np.float64)
    d = xb - xa
    lo, hi = _bootstrap_ci(d, n_boot, seed)
    common = {"n_only_a": only_a, "n_only_b": only_b, "kind": kind}
    if kind == "binary":
        if not (is_binary(xa) and is_binary(xb)):
            raise ValueError(f"{metric}: a binary metric with values other than 0 and 1")
        b_only, a_only = int(((xb == 1) & (xa == 0)).sum()), int(((xa == 1) & (xb == 0)).sum())
        return Comparison(metric, len(items), float(xa.mean()), float(xb.mean()),
                          float(d.mean()), lo, hi, mcnemar_exact(b_only, a_only),
                          "exact McNemar", b_only, a_only, **common)
    return Comparison(metric, len(items), float(xa.mean()), float(xb.mean()), float(d.mean()),
                      lo, hi, sign_flip_p(d, seed=seed), "paired sign-flip", **common)


def sign_flip_p(d: np.ndarray, n_perm: int = 10_000, seed: int = 0) -> float:
    """Two-sided paired permutation p: under H0 each item's difference is as likely negated.
    Exact enumeration up to 16 items, else Monte Carlo with the (count + 1) / (n + 1) rule."""
    d = np.asarray(d, dtype=np.float64)
    if not np.all(np.isfinite(d)):
        raise ValueError("sign_flip_p: a difference is not a number")
    observed = abs(d.mean()) if d.size else 0.0
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


# ---- several seeds -----------------------------------------------------------------------------

def _matrix(seeds: Sequence[Mapping[str, float]], items: Sequence[str]) -> np.ndarray:
    return np.array([[s[i] for i in items] for s in seeds], dtype=np.float64)


def _common_items(groups: Sequence[Sequence[Mapping[str, float]]], metric: str,
                  names: Sequence[str]) -> tuple[list[str], list[int]]:
    """Items every seed of every group scored, and per group the items left out; the overlap
    rule of `shared_items` applied to each group's union against the others'."""
    unions = [set().union(*(set(s) for s in g)) for g in groups]
    common = set.intersection(*(set.intersection(*(set(s) for s in g)) for g in groups))
    for name, union in zip(names, unions, strict=True):
        if len(common) < MIN_SHARED * len(union) or not common:
            raise OverlapError(
                f"{metric or 'metric'}: runs {', '.join(names)} share {len(common)} items scored "
                f"by every seed, fewer than half of {name}'s {len(union)}")
    return sorted(common), [len(u - common) for u in unions]


def resampled_means(groups: Sequence[np.ndarray], n_boot: int = N_BOOT, seed: int = 0,
                    chunk: int = 250) -> np.ndarray:
    """[n_boot, groups]: each replicate resamples every group's seeds (rows) with replacement,
    then the items (columns) once, shared by all groups, so the item pairing is kept; a group
    with one seed keeps it. Vectorised a chunk of replicates at a time (chunk x seeds x items
    values in memory)."""
    rng = np.random.default_rng(seed)
    n_items = groups[0].shape[1]
    out = np.empty((n_boot, len(groups)))
    for start in range(0, n_boot, chunk):
        size = min(chunk, n_boot - start)
        cols = rng.integers(0, n_items, size=(size, n_items))
        for j, g in enumerate(groups):
            rows = rng.integers(0, g.shape[0], size=(size, g.shape[0]))
            out[start:start + size, j] = g[rows[:, :, None], cols[:, None, :]].mean(axis=(1, 2))
    return out


def two_level_bootstrap(groups: Sequence[np.ndarray], weights: Sequence[float],
                        n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of sum_g w_g * mean(group g), seeds then items (resampled_means)."""
    return resampled_means(groups, n_boot, seed) @ np.asarray(weights, dtype=np.float64)


def seed_t_test(groups: Sequence[np.ndarray], weights: Sequence[float]) -> tuple[float, str]:
    """(two-sided p, test name) of H0: sum_g w_g * mu_g = 0, seeds as the replicating unit.

    Each seed's item mean is one observation of its group; Welch's t with the
    Welch-Satterthwaite degrees of freedom over those observations, its variance the
    seed-to-seed variance of each group (a group of one seed adds none: the untrained base
    model is deterministic under greedy decoding). So a difference that changes sign between
    seeds is not significant however clear it is within each seed on items, while a steady one
    is. Reimers & Gurevych (2017, "Reporting Score Distributions Makes a Difference", EMNLP)
    show single-seed comparisons of neural models mislead and compare score distributions over
    seeds with Welch's t-test; Bouthillier et al. (2021, "Accounting for Variance in Machine
    Learning Benchmarks", MLSys) argue the test must include the variance of the training
    randomness, not only of the test items. Items are fixed across seeds (the same test items),
    so the test is conditional on the item set; the interval (two_level_bootstrap) also
    resamples items."""
    means = [g.mean(axis=1) for g in groups]
    effect = sum(w * m.mean() for w, m in zip(weights, means, strict=True))
    parts = [(w * w * m.var(ddof=1) / m.size, m.size) for w, m in zip(weights, means,
                                                                        strict=True)
             if m.size > 1]
    var = sum(v for v, _ in parts)
    name = f"Welch t over seeds ({' vs '.join(str(m.size) for m in means)})"
    if var == 0:
        return (1.0 if effect == 0 else 0.0), name
    df = var ** 2 / sum(v * v / (s - 1) for v, s in parts)
    t = effect / math.sqrt(var)
    return float(2 * sp.t.sf(abs(t), df)), name


def compare_seeded(a_seeds: Sequence[Mapping[str, float]], b_seeds: Sequence[Mapping[str, float]],
                   metric: str = "", kind: str = "continuous",
                   names: tuple[str, str] = ("A", "B"), n_boot: int = N_BOOT,
                   seed: int = 0) -> Comparison:
    """B minus A with any number of seeds per side. One seed each: `compare_paired`. Otherwise
    the difference of the seed-averaged means on the items every seed scored, a two-level
    bootstrap interval (seeds, then items) and the seed-level t test of `seed_t_test`; the
    per-seed paired comparisons (seeds paired by index, a single-seed side reused) ride along."""
    if len(a_seeds) == 1 and len(b_seeds) == 1:
        return compare_paired(a_seeds[0], b_seeds[0], metric, kind, names, n_boot, seed)
    check_kind(kind)
    for name, group in zip(names, (a_seeds, b_seeds), strict=True):
        for i, s in enumerate(group):
            check_finite(s, f"run {name} seed {i}, {metric}")
    items, (only_a, only_b) = _common_items([a_seeds, b_seeds], metric, names)
    ma, mb = _matrix(a_seeds, items), _matrix(b_seeds, items)
    boot = two_level_bootstrap([ma, mb], [-1.0, 1.0], n_boot, seed)
    alpha = (1 - CONF) / 2
    lo, hi = (float(q) for q in np.quantile(boot, [alpha, 1 - alpha]))
    p, test = seed_t_test([ma, mb], [-1.0, 1.0])
    pairs = max(len(a_seeds), len(b_seeds))
    per_seed = tuple(compare_paired(a_seeds[min(i, len(a_seeds) - 1)],
                                    b_seeds[min(i, len(b_seeds) - 1)], metric, kind,
                                    (f"{names[0]}[{i}]", f"{names[1]}[{i}]"), n_boot, seed)
                     for i in range(pairs))
    return Comparison(metric, len(items), float(ma.mean()), float(mb.mean()),
                      float(mb.mean() - ma.mean()), lo, hi, p, test, n_only_a=only_a,
                      n_only_b=only_b, seeds_a=len(a_seeds), seeds_b=len(b_seeds), kind=kind,
                      per_seed=per_seed)


def seeded_interval(seeds: Sequence[Mapping[str, float]], kind: str,
                    seed: int = 0) -> tuple[float, float, float, int]:
    """(mean, lo, hi, items) of one cell: one seed, `interval`; several, the two-level
    bootstrap over seeds and the items all of them scored."""
    if len(seeds) == 1:
        values = list(seeds[0].values())
        return interval(values, kind, seed)
    items = sorted(set.intersection(*(set(s) for s in seeds)))
    m = _matrix(seeds, items)
    boot = two_level_bootstrap([m], [1.0], seed=seed)
    alpha = (1 - CONF) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return float(m.mean()), float(lo), float(hi), len(items)


@dataclass(frozen=True)
class Contrast:
    """sum_j w_j * mean(cell j) on the items every cell scored, with its interval and p."""
    effect: float
    ci_low: float
    ci_high: float
    p: float
    se: float  # the bootstrap's standard deviation of the effect
    n: int
    seeds: tuple[int, ...]
    test: str

    def to_dict(self) -> dict:
        return asdict(self)


def contrast(cells: Sequence[Sequence[Mapping[str, float]]], weights: Sequence[float],
             names: Sequence[str], metric: str = "", n_boot: int = N_BOOT,
             seed: int = 0) -> Contrast:
    """A weighted sum of cells (each a list of seeds' {item: value}) on their shared items: the
    interval from the two-level bootstrap; p from a sign-flip test on the per-item contrast when
    every cell has one seed, else from the seed-level t test (`seed_t_test`)."""
    for name, cell in zip(names, cells, strict=True):
        for i, s in enumerate(cell):
            check_finite(s, f"run {name} seed {i}, {metric}")
    items, _ = _common_items(cells, metric, names)
    mats = [_matrix(cell, items) for cell in cells]
    boot = two_level_bootstrap(mats, weights, n_boot, seed)
    alpha = (1 - CONF) / 2
    lo, hi = (float(q) for q in np.quantile(boot, [alpha, 1 - alpha]))
    effect = float(sum(w * m.mean() for w, m in zip(weights, mats, strict=True)))
    if all(m.shape[0] == 1 for m in mats):
        per_item = sum(w * m[0] for w, m in zip(weights, mats, strict=True))
        p, test = sign_flip_p(per_item, seed=seed), "paired sign-flip over items"
    else:
        p, test = seed_t_test(mats, weights)
    return Contrast(effect, lo, hi, p, float(boot.std(ddof=1)), len(items),
                    tuple(m.shape[0] for m in mats), test)


def joint_contrasts(cells: Sequence[Sequence[Mapping[str, float]]],
                    weight_rows: Sequence[Sequence[float]], names: Sequence[str],
                    metric: str = "", n_boot: int = N_BOOT,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    """(effects [k], bootstrap replicates [n_boot, k], items) of k contrasts of the same cells
    under the same resamples, for a statistic of several contrasts (|E1| - |E2|)."""
    for name, cell in zip(names, cells, strict=True):
        for i, s in enumerate(cell):
            check_finite(s, f"run {name} seed {i}, {metric}")
    items, _ = _common_items(cells, metric, names)
    mats = [_matrix(cell, items) for cell in cells]
    w = np.asarray(weight_rows, dtype=np.float64)  # [k, cells]
    effects = w @ np.array([m.mean() for m in mats])
    return effects, resampled_means(mats, n_boot, seed) @ w.T, len(items)
