"""Exact, seeded, nested subsets of a source, and the seeded order of each epoch.

Records are ordered by sha256(seed, source, id) and the first n are taken, so the 1/256 subset
lies inside the 1/64 one and the same ids come out on any machine or worker count (never Ray
Data's approximate `random_sample`). `epoch_order` sorts by sha256(seed, epoch, source, id).
"""

from __future__ import annotations

import hashlib
from fractions import Fraction

from trainers.data.recipe import Amount, check_amount


def _digest(*parts: object) -> bytes:
    # NUL-separated so ("a1", "2") and ("a", "12") cannot collide
    return hashlib.sha256("\0".join(str(p) for p in parts).encode("utf-8")).digest()


def selection_key(seed: int, source: str, rid: str) -> bytes:
    return _digest("select", seed, source, rid)


def order_key(seed: int, epoch: int, source: str, rid: str) -> bytes:
    return _digest("epoch", seed, epoch, source, rid)


def count_for(amount: Amount, n: int) -> int:
    """How many of n records an amount selects.

    Fraction f: round(f * n) with halves rounded UP (floor(f*n + 1/2), exact Fraction arithmetic,
    monotone in f, so nesting holds), and at least 1 when f > 0. Int: itself; more than n raises.
    """
    check_amount(amount)
    if isinstance(amount, Fraction):
        if amount == 0:
            return 0
        return max(1, int((amount * n + Fraction(1, 2)) // 1))
    if amount > n:
        raise ValueError(f"a count of {amount} records exceeds the {n} available")
    return amount


def select(records: list[dict], amount: Amount, seed: int, source: str) -> list[dict]:
    """The first `count_for(amount, len(records))` records in sha256(seed, source, id) order."""
    ids = [r["id"] for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError(f"source {source!r}: record ids are not unique; selection needs them")
    n = count_for(amount, len(records))
    ranked = sorted(records, key=lambda r: selection_key(seed, source, r["id"]))
    return ranked[:n]


def epoch_order(pairs: list[tuple[str, str]], seed: int, epoch: int) -> list[tuple[str, str]]:
    """(source, id) pairs in the seeded order of one epoch: a sort, exact on any layout."""
    return sorted(pairs, key=lambda p: order_key(seed, epoch, p[0], p[1]))
