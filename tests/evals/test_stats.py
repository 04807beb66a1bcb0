"""evals.stats against values computed by hand, exactly, or published elsewhere; and each defect an
audit found, planted: McNemar past 1,024 discordant pairs, partial overlaps, NaN items, the
interval chosen by the metric's kind, and seeds that disagree in sign."""

import math
from fractions import Fraction

import numpy as np
import pytest

from evals import stats


def test_wilson_known_values():
    # Wilson 95% for 0/10 is [0, 0.2775] and 42/100 is [0.3280, 0.5179] (Newcombe 1998's formula).
    lo, hi = stats.wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.27753, abs=1e-4)
    lo, hi = stats.wilson(42, 100)
    assert (lo, hi) == pytest.approx((0.32798, 0.51794), abs=1e-4)
    assert stats.wilson(10, 10)[1] == 1.0
    assert stats.wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        stats.wilson(11, 10)


def test_mcnemar_exact_is_the_binomial_tail():
    assert stats.mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert stats.mcnemar_exact(3, 3) == 1.0
    assert stats.mcnemar_exact(0, 0) == 1.0
    # 1 vs 42 discordant: 2 * (1 + 43) / 2**43
    assert stats.mcnemar_exact(42, 1) == pytest.approx(2 * 44 / 2 ** 43)


def test_holm_adjusts_in_input_order_and_stays_monotone():
    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert stats.holm([0.5]) == [0.5]
    assert stats.holm([0.4, 0.4]) == [0.8, 0.8]


def test_compare_paired_binary_uses_mcnemar_on_shared_items():
    a = {f"q{i}": float(i < 42) for i in range(100)}
    b = {f"q{i}": float(i < 1) for i in range(100)}
    b["extra"] = 1.0  # scored by one run only: not paired, not counted
    c = stats.compare_paired(a, b, "gsm8k/flexible", "binary")
    assert (c.n, c.a_only, c.b_only, c.test) == (100, 41, 0, "exact McNemar")
    assert (c.n_shared, c.n_only_a, c.n_only_b, c.partial) == (100, 0, 1, True)
    assert c.diff == pytest.approx(-0.41)
    assert c.ci_low <= c.diff <= c.ci_high < 0
    assert c.p < 1e-10


def test_compare_paired_continuous_and_no_difference():
    a = {str(i): float(i) for i in range(40)}
    same = stats.compare_paired(a, dict(a), "loss")
    assert same.diff == 0 and same.p == 1.0 and same.test == "paired sign-flip"
    shifted = stats.compare_paired(a, {k: v + 0.5 for k, v in a.items()}, "loss")
    assert shifted.diff == pytest.approx(0.5) and shifted.p < 0.001
    assert shifted.ci_low == pytest.approx(0.5) and shifted.ci_high == pytest.approx(0.5)
    with pytest.raises(stats.OverlapError, match="share 0 scored items"):
        stats.compare_paired({"x": 1.0}, {"y": 1.0})


def test_sign_flip_exact_for_small_samples():
    # 4 equal positive differences: only the all-plus and all-minus signings are as extreme.
    assert stats.sign_flip_p([1.0, 1.0, 1.0, 1.0]) == pytest.approx(2 / 16)


def test_interval_picks_wilson_or_bootstrap_and_contains_the_mean():
    mean, lo, hi, n = stats.interval([1.0, 0.0, 0.0, 1.0], "binary")
    assert (mean, n) == (0.5, 4) and (lo, hi) == pytest.approx(stats.wilson(2, 4))
    values = [0.1 * i for i in range(50)]
    mean, lo, hi, n = stats.interval(values, "continuous")
    assert mean == pytest.approx(2.45) and n == 50
    # The bootstrap's 95% interval of a mean of 50 near-normal values is close to the normal
    # one: 2.45 +- 1.96 x sd / sqrt(50), sd = 0.1 x sqrt((50^2 - 1) / 12) = 1.4431 (population
    # sd, as resampling uses), so [2.050, 2.850]; 2000 resamples put each end within ~0.015.
    assert (lo, hi) == pytest.approx((2.050, 2.850), abs=0.03)
    assert stats.interval(values, "continuous") == (mean, lo, hi, n)  # seeded: same every call
    assert math.isnan(stats.interval([], "binary")[0])


# ---- the audit's defects, each planted --------------------------------------------------------

def exact_mcnemar(b: int, c: int) -> float:
    """The exact binomial tail in rational arithmetic: no floating point until the end."""
    n = b + c
    tail = Fraction(sum(math.comb(n, i) for i in range(min(b, c) + 1)), 2 ** n)
    return float(min(Fraction(1), 2 * tail))


@pytest.mark.parametrize("b, c", [(700, 619), (1100, 219), (2000, 1950), (5, 1500)])
def test_mcnemar_is_exact_for_any_number_of_discordant_pairs(b, c):
    """Past 1,024 discordant pairs 2.0 ** n overflowed; a 7B model at 80% against a base near 0%
    on GSM8K's 1,319 questions has that many."""
    assert b + c >= 1319
    assert stats.mcnemar_exact(b, c) == pytest.approx(exact_mcnemar(b, c), rel=1e-9, abs=1e-300)


def test_a_partial_overlap_is_stated_and_under_half_is_refused():
    a = {f"q{i}": float(i % 2) for i in range(100)}
    b = {f"q{i}": float(i % 3 == 0) for i in range(40, 160)}  # 60 shared, 40 only A, 60 only B
    c = stats.compare_paired(a, b, "acc", "binary", names=("rq1-math", "rq2-mix"))
    assert (c.n_shared, c.n_only_a, c.n_only_b) == (60, 40, 60)
    assert c.to_dict()["n_shared"] == 60
    few = {f"q{i}": 1.0 for i in range(90, 140)}  # 10 of A's 100 items
    with pytest.raises(stats.OverlapError, match="rq1-math and rq2-mix share 10"):
        stats.compare_paired(a, few, "acc", "binary", names=("rq1-math", "rq2-mix"))


def test_nan_items_are_an_error_naming_run_metric_and_item_not_a_star():
    a = {str(i): float(i) for i in range(20)}
    b = {**a, "7": math.nan}
    with pytest.raises(ValueError, match=r"run rq2-mix, general/loss: item '7' has value nan"):
        stats.compare_paired(a, b, "general/loss", "continuous", names=("base", "rq2-mix"))
    with pytest.raises(ValueError, match="not in \\[0, 1\\]"):
        stats.holm([0.01, math.nan, 0.04])
    with pytest.raises(ValueError, match="not a number"):
        stats.sign_flip_p(np.array([1.0, math.nan]))


def test_the_interval_follows_the_metric_kind_not_the_values():
    """An MT-Bench run graded 1 on every answer is still a grade: a bootstrap interval, not a
    Wilson one (which would claim [0.x, 1] of a proportion)."""
    grades = [1.0] * 30
    mean, lo, hi, n = stats.interval(grades, "continuous")
    assert (mean, lo, hi, n) == (1.0, 1.0, 1.0, 30)
    assert stats.interval(grades, "binary")[1] == pytest.approx(stats.wilson(30, 30)[0])
    with pytest.raises(ValueError, match="binary metric with values other than 0 and 1"):
        stats.interval([0.5, 1.0], "binary")


def seeded_runs(seed_effects, n=200, base_rate=0.5, seed=0):
    """Per seed, A and B on the same n items: B = A plus the seed's effect, that share of all
    items flipped from wrong to right (or from right to wrong when negative)."""
    rng = np.random.default_rng(seed)
    a_seeds, b_seeds = [], []
    for effect in seed_effects:
        a = (rng.random(n) < base_rate).astype(float)
        b = a.copy()
        flippable = np.flatnonzero(a == (0.0 if effect > 0 else 1.0))
        flip = rng.permutation(flippable)[:int(abs(effect) * n)]
        b[flip] = 1.0 if effect > 0 else 0.0
        a_seeds.append({f"q{i}": a[i] for i in range(n)})
        b_seeds.append({f"q{i}": b[i] for i in range(n)})
    return a_seeds, b_seeds


@pytest.mark.parametrize("effects", [(0.25, -0.2, 0.25), (0.25, -0.2, 0.3, -0.25, 0.2)])
def test_a_difference_that_changes_sign_between_seeds_is_not_significant(effects):
    a, b = seeded_runs(effects)
    for i in range(len(effects)):  # clear within every seed on its items
        assert stats.compare_paired(a[i], b[i], "acc", "binary").p < 1e-4
    c = stats.compare_seeded(a, b, "acc", "binary")
    assert c.p > 0.05 and c.test.startswith("Welch t over seeds")
    assert c.ci_low < 0 < c.ci_high  # the two-level bootstrap spans the seeds' disagreement
    assert len(c.per_seed) == len(effects) and all(s.p < 1e-4 for s in c.per_seed)


@pytest.mark.parametrize("effects", [(0.2, 0.22, 0.18), (0.2, 0.22, 0.18, 0.21, 0.19)])
def test_a_steady_difference_over_seeds_is_significant(effects):
    a, b = seeded_runs(effects)
    c = stats.compare_seeded(a, b, "acc", "binary")
    assert c.p < 0.05 and 0 < c.ci_low < c.diff < c.ci_high
    assert (c.seeds_a, c.seeds_b) == (len(effects),) * 2


def test_one_base_seed_against_several_is_a_one_sided_seed_variance():
    base, _ = seeded_runs((0.0,))
    _, runs = seeded_runs((0.2, 0.21, 0.19), seed=0)
    c = stats.compare_seeded(base, runs, "acc", "binary", names=("base", "math"))
    assert c.test == "Welch t over seeds (1 vs 3)" and c.seeds_a == 1 and c.seeds_b == 3


def test_a_multi_seed_cell_gets_an_interval_over_seeds_and_items():
    _, runs = seeded_runs((0.1, 0.2, 0.3))
    mean, lo, hi, n = stats.seeded_interval(runs, "binary")
    one = stats.seeded_interval(runs[:1], "binary")
    assert n == 200 and lo < mean < hi
    assert hi - lo > one[2] - one[1]  # wider than one seed's: the seeds disagree


def test_contrast_of_four_cells_is_a_difference_in_differences():
    rng = np.random.default_rng(1)
    items = [f"q{i}" for i in range(300)]

    def cell(rate):
        return [{i: float(rng.random() < rate) for i in items}]

    # mixed minus single: +0.2 at the small amount, -0.1 at the large one
    cells = [cell(0.5), cell(0.3), cell(0.4), cell(0.5)]  # mix_small, single_small, mix_big, single_big
    c = stats.contrast(cells, [1, -1, -1, 1], ["ms", "ss", "mb", "sb"], "acc")
    assert c.effect == pytest.approx(0.3, abs=0.1) and c.ci_low > 0 and c.p < 0.01
    assert c.n == 300 and c.seeds == (1, 1, 1, 1)
