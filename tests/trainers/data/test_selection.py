"""Exact, seeded, nested amounts and the per-epoch order."""

from __future__ import annotations

import random
from fractions import Fraction

import pytest

from trainers.data.selection import count_for, epoch_order, select


def _records(n: int) -> list[dict]:
    return [{"id": f"r{i}", "source": "s", "messages": []} for i in range(n)]


def test_counts_are_exact_with_half_up_rounding_and_at_least_one():
    assert count_for(Fraction(1, 256), 7473) == 29  # 29.19
    assert count_for(Fraction(1, 2), 3) == 2  # 1.5 rounds up, not to even
    assert count_for(Fraction(1, 2), 5) == 3  # 2.5 rounds up too (Python's round gives 2)
    assert count_for(Fraction(1, 4), 6) == 2  # 1.5
    assert count_for(Fraction(1, 1000), 10) == 1  # > 0 keeps at least one
    assert count_for(Fraction(0), 10) == 0
    assert count_for(Fraction(1), 10) == 10
    assert count_for(7, 10) == 7
    with pytest.raises(ValueError, match="exceeds"):
        count_for(11, 10)
    with pytest.raises(TypeError):
        count_for(0.5, 10)


def test_selection_is_nested_and_independent_of_input_order():
    records = _records(1000)
    small = select(records, Fraction(1, 64), seed=3, source="s")
    big = select(records, Fraction(1, 16), seed=3, source="s")
    assert len(small) == 16 and len(big) == 63  # 15.6 and 62.5 (half up)
    assert {r["id"] for r in small} <= {r["id"] for r in big}
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    assert select(shuffled, Fraction(1, 16), 3, "s") == big
    assert select(records, 63, 3, "s") == big  # a count takes the same prefix


def test_seed_and_source_change_the_subset():
    records = _records(500)
    base = {r["id"] for r in select(records, Fraction(1, 10), 0, "math")}
    assert base != {r["id"] for r in select(records, Fraction(1, 10), 1, "math")}
    assert base != {r["id"] for r in select(records, Fraction(1, 10), 0, "code")}


def test_duplicate_ids_are_refused():
    records = _records(3) + _records(1)
    with pytest.raises(ValueError, match="not unique"):
        select(records, Fraction(1, 2), 0, "s")


def test_epoch_order_is_a_seeded_permutation_that_differs_per_epoch():
    pairs = [("a", f"{i}") for i in range(50)] + [("b", f"{i}") for i in range(50)]
    e0, e1 = epoch_order(pairs, 0, 0), epoch_order(pairs, 0, 1)
    assert sorted(e0) == sorted(pairs) and e0 != e1 and e0 != pairs
    assert epoch_order(list(reversed(pairs)), 0, 0) == e0
    assert epoch_order(pairs, 1, 0) != e0
