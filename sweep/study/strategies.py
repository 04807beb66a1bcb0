"""Fine-tuning strategies as pure functions returning a tuple of stages.

A stage is one fine-tuning pass over one data recipe; a strategy is the list of stages from
the base model (GRID.md). The training loop never looks at a strategy's name: it only ever
sees stages. `settings` stays None here; presets attach TrainSettings to every stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from trainers.data.recipe import Amount, Recipe, make_recipe

ONE = Fraction(1)
SPECIALIZED = ("math", "code")


@dataclass(frozen=True)
class Stage:
    recipe: Recipe
    settings: Any = None  # core.settings.TrainSettings once a preset attaches it


def with_settings(stages: Sequence[Stage], settings: Any) -> tuple[Stage, ...]:
    return tuple(replace(stage, settings=settings) for stage in stages)


def single(source: str, amount: Amount = ONE) -> tuple[Stage, ...]:
    """One source alone (RQ1; 'general only', 'math only', 'code only')."""
    return (Stage(make_recipe([(source, amount)])),)


def mix(amounts: dict[str, Amount]) -> tuple[Stage, ...]:
    """All named sources at their amounts, mixed in one stage (RQ2, RQ3, ablation)."""
    return (Stage(make_recipe(amounts.items())),)


def multi_task(sources: Sequence[str] = ("math", "code", "general"),
               amount: Amount = ONE) -> tuple[Stage, ...]:
    """Every source at `amount` (all of it by default), in one stage."""
    return mix({s: amount for s in sources})


def sequential(order: Sequence[str] = ("code", "math", "general"),
               amount: Amount = ONE) -> tuple[Stage, ...]:
    """One source per stage, in order (the paper: code, then math, then general)."""
    return tuple(Stage(make_recipe([(s, amount)])) for s in order)


def mixed_sequential(general: str = "general", specialized: Sequence[str] = SPECIALIZED,
                     amount: Amount = ONE) -> tuple[Stage, ...]:
    """Specialized data mixed first, general data second."""
    return (
        Stage(make_recipe([(s, amount) for s in specialized])),
        Stage(make_recipe([(general, amount)])),
    )


def dmt(k: Amount, general: str = "general", specialized: Sequence[str] = SPECIALIZED,
        amount: Amount = ONE) -> tuple[Stage, ...]:
    """Dual-stage Mixed Fine-tuning: specialized first, then general plus k of the specialized
    data the first stage trained on (k x `amount` of each source: the nested subsets make it a
    part of that data). k = 0 is mixed sequential (the zero amounts drop out of the recipe)."""
    first = Stage(make_recipe([(s, amount) for s in specialized]))
    second = Stage(make_recipe([(general, amount)] + [(s, _times(k, amount)) for s in specialized]))
    return (first, second)


def _times(k: Amount, amount: Amount) -> Amount:
    """k of `amount`: a fraction of a fraction is exact; a count k is a count."""
    if isinstance(k, int) or amount == ONE:
        return k
    return k * amount
