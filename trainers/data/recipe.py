"""Data recipes: what one stage trains on, as exact amounts per source.

An amount is a `Fraction` (of the source's valid records) or an `int` (a count), never a
string, so "1" and "1.0" cannot name different runs. A recipe is a sorted tuple of
(source, amount) pairs, hashable and canonical.
"""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction

Amount = Fraction | int
Recipe = tuple[tuple[str, Amount], ...]


def check_amount(amount: Amount) -> Amount:
    if isinstance(amount, bool) or not isinstance(amount, (Fraction, int)):
        raise TypeError(f"an amount is a Fraction or an int count, not {type(amount).__name__}")
    if isinstance(amount, Fraction) and not 0 <= amount <= 1:
        raise ValueError(f"a fraction of a source must lie in [0, 1], got {amount}")
    if isinstance(amount, int) and amount < 0:
        raise ValueError(f"a count must be >= 0, got {amount}")
    return amount


def make_recipe(pairs: Iterable[tuple[str, Amount]]) -> Recipe:
    """Canonical recipe: sources sorted, amounts checked, zero amounts dropped, no duplicates."""
    out: dict[str, Amount] = {}
    for source, amount in pairs:
        if source in out:
            raise ValueError(f"source {source!r} appears twice in a recipe")
        if check_amount(amount) != 0:
            out[source] = amount
    if not out:
        raise ValueError("a recipe needs at least one source with a non-zero amount")
    return tuple(sorted(out.items()))


def parse_amount(text: str) -> Amount:
    """CLI only: '1/256' or '0.5' -> Fraction, '#300' -> int count of 300 records."""
    text = text.strip()
    if text.startswith("#"):
        return check_amount(int(text[1:]))
    return check_amount(Fraction(text))


def parse_recipe(text: str) -> Recipe:
    """'math=1/256,code=1/256,general=#300' -> a canonical Recipe."""
    pairs = []
    for part in text.split(","):
        if not part.strip():
            continue
        source, sep, amount = part.partition("=")
        if not sep:
            raise ValueError(f"recipe part {part!r} is not SOURCE=AMOUNT")
        pairs.append((source.strip(), parse_amount(amount)))
    return make_recipe(pairs)


def format_amount(amount: Amount) -> str:
    return f"#{amount}" if isinstance(amount, int) else str(amount)


def format_recipe(recipe: Recipe) -> str:
    """Inverse of parse_recipe: 'code=1/256,general=1/256,math=1/256'."""
    return ",".join(f"{s}={format_amount(a)}" for s, a in recipe)
