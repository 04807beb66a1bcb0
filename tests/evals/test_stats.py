"""evals.stats against values computed by hand or published elsewhere."""

import math

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
    c = stats.compare_paired(a, b, "gsm8k/flexible")
    assert (c.n, c.a_only, c.b_only, c.test) == (100, 41, 0, "exact McNemar")
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
    with pytest.raises(ValueError, match="share no scored item"):
        stats.compare_paired({"x": 1.0}, {"y": 1.0})


def test_sign_flip_exact_for_small_samples():
    # 4 equal positive differences: only the all-plus and all-minus signings are as extreme.
    assert stats.sign_flip_p([1.0, 1.0, 1.0, 1.0]) == pytest.approx(2 / 16)


def test_interval_picks_wilson_or_bootstrap_and_contains_the_mean():
    mean, lo, hi, n = stats.interval([1.0, 0.0, 0.0, 1.0])
    assert (mean, n) == (0.5, 4) and (lo, hi) == pytest.approx(stats.wilson(2, 4))
    values = [0.1 * i for i in range(50)]
    mean, lo, hi, n = stats.interval(values)
    assert mean == pytest.approx(2.45) and n == 50
    # The bootstrap's 95% interval of a mean of 50 near-normal values is close to the normal
    # one: 2.45 +- 1.96 x sd / sqrt(50), sd = 0.1 x sqrt((50^2 - 1) / 12) = 1.4431 (population
    # sd, as resampling uses), so [2.050, 2.850]; 2000 resamples put each end within ~0.015.
    assert (lo, hi) == pytest.approx((2.050, 2.850), abs=0.03)
    assert stats.interval(values) == (mean, lo, hi, n)  # seeded: the same numbers every call
    assert math.isnan(stats.interval([])[0])
