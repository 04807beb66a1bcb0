"""The candidate space: one typed definition of a data composition, shared by the grid, the fits
(sweep/decision/) and the proposals of `sweep.recommend` and `sweep.search`.

A `Composition` is a strategy and an amount per source:
- `mix`: one stage mixing the sources at their amounts (one source alone, multi-task, RQ2's
  mixes and RQ3's ratios are all mixes);
- `sequential`: one source per stage, in `order`;
- `mixed_sequential`: the `specialized` sources mixed, then the `general` source;
- `dmt`: the same, the second stage also taking k of each specialized source's amount.
Amounts are fractions of each source, on the grid of exact nested subsets the sampler draws
(1, 1/2, ... 1/256: `LEVELS`; `snap` puts any amount on it); a source the composition leaves out
has no amount (its own indicator in the fits, never log2 of 0). A composition can also be
given as a total amount and ratios over tokens on the simplex (`from_ratios`). Amounts travel
as "p/q" strings (`to_dict`). `key()` names a composition whatever run trained it: proxies and
full runs are paired by it.
    python -c "from sweep.study.candidates import Composition as C; print(C.mix({'math': '1/4'}).key())"
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from sweep.study.strategies import Stage
from trainers.data.recipe import format_amount, make_recipe, parse_amount, parse_recipe

STRATEGIES = ("mix", "sequential", "mixed_sequential", "dmt")
BASE = "base"  # the untrained model: no stage, every source absent
LEVELS = tuple(Fraction(1, 2 ** j) for j in range(9))  # 1 ... 1/256
# The paper's strategy names (sweep.study.grid) -> the candidate space's.
PAPER_STRATEGIES = {"multi-task": "mix", "mix": "mix", "sequential": "sequential",
                    "mixed sequential": "mixed_sequential", "dmt": "dmt", "base": BASE}


class NotInSpace(ValueError):
    """A run the candidate space cannot describe (counts instead of fractions, an unknown
    staged strategy); the fits leave it out and count it."""


def snap(amount: Fraction | float) -> Fraction:
    """The nearest level in log2 (ties to the larger), within 1 ... 1/256."""
    value = float(amount)
    if value <= 0:
        raise ValueError(f"amount {amount}: must be > 0 (a source left out has no amount)")
    j = min(len(LEVELS) - 1, max(0, round(-math.log2(value))))
    return LEVELS[j]


def _fraction(value) -> Fraction:
    amount = parse_amount(value) if isinstance(value, str) else Fraction(value)
    if not isinstance(amount, Fraction) or not 0 < amount <= 1:
        raise NotInSpace(f"amount {value!r}: a fraction in (0, 1] (counts are not in the space)")
    return amount


@dataclass(frozen=True)
class Composition:
    strategy: str
    amounts: tuple[tuple[str, Fraction], ...]  # (source, amount), sorted by source; present ones
    k: Fraction | None = None  # dmt
    order: tuple[str, ...] = ()  # sequential
    specialized: tuple[str, ...] = ()  # mixed_sequential, dmt
    general: str | None = None  # mixed_sequential, dmt

    def __post_init__(self):
        if self.strategy not in (*STRATEGIES, BASE):
            raise ValueError(f"strategy {self.strategy!r}: one of {STRATEGIES}")
        if (self.strategy == "dmt") != (self.k is not None):
            raise ValueError("k is DMT's, and DMT needs one")

    # ---- construction ----------------------------------------------------------------------

    @classmethod
    def mix(cls, amounts: Mapping[str, Fraction | str]) -> Composition:
        return cls("mix", _sorted(amounts))

    @classmethod
    def staged(cls, strategy: str, amounts: Mapping[str, Fraction | str], *,
               k=None, order: Sequence[str] = (), specialized: Sequence[str] = (),
               general: str | None = None) -> Composition:
        return cls(strategy, _sorted(amounts), None if k is None else _fraction(k),
                   tuple(order), tuple(sorted(specialized)), general)

    @classmethod
    def from_ratios(cls, ratios: Mapping[str, float], total: float,
                    source_tokens: Mapping[str, float]) -> Composition:
        """A mix from a total (tokens, as a share of all the sources' tokens) and ratios over
        tokens on the simplex: source s gets ratio_s x total x sum(tokens) of its tokens, as
        the nearest level of its own; a ratio of 0 leaves it out."""
        weight = sum(ratios.values())
        if weight <= 0 or min(ratios.values()) < 0:
            raise ValueError(f"ratios {dict(ratios)}: non-negative, not all zero")
        everything = sum(source_tokens[s] for s in ratios)
        amounts = {s: snap(min(1.0, r / weight * total * everything / source_tokens[s]))
                   for s, r in ratios.items() if r > 0}
        return cls.mix(amounts)

    @classmethod
    def from_stages(cls, recipes: Sequence[str], strategy: str,
                    k: str | Fraction | None = None) -> Composition:
        """The composition a run trained: its stages' recipe texts and its strategy's name
        (as results rows record them). NotInSpace for what the space cannot describe."""
        stages = [dict(parse_recipe(text)) for text in recipes]
        name = PAPER_STRATEGIES.get(strategy.lower(), strategy.lower())
        if not stages:
            return cls(BASE, ())
        if len(stages) == 1:
            return cls.mix({s: _fraction(a) for s, a in stages[0].items()})
        if name == "sequential" and all(len(s) == 1 for s in stages):
            order = [next(iter(s)) for s in stages]
            return cls.staged("sequential", {n: _fraction(s[n]) for n, s in zip(order, stages)},
                              order=order)
        if name in ("mixed_sequential", "dmt") and len(stages) == 2:
            return _two_stage(name, stages, k)
        raise NotInSpace(f"strategy {strategy!r} with {len(stages)} stages: not in the space")

    # ---- reading ---------------------------------------------------------------------------

    def amount_of(self, source: str) -> Fraction | None:
        return dict(self.amounts).get(source)

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(s for s, _ in self.amounts)

    def stages(self) -> tuple[Stage, ...]:
        """The stages that train it, as the grid's strategies build them (same recipes, so the
        same stage ids)."""
        amounts = dict(self.amounts)
        if self.strategy == BASE:
            return ()
        if self.strategy == "mix":
            return (Stage(make_recipe(amounts.items())),)
        if self.strategy == "sequential":
            return tuple(Stage(make_recipe([(s, amounts[s])])) for s in self.order)
        first = Stage(make_recipe([(s, amounts[s]) for s in self.specialized]))
        extra = [(s, self.k * amounts[s]) for s in self.specialized] \
            if self.strategy == "dmt" else []
        return (first, Stage(make_recipe([(self.general, amounts[self.general]), *extra])))

    def key(self) -> str:
        """The composition's name, the same for every run that trains it."""
        parts = [self.strategy]
        if self.k is not None:
            parts.append(f"k={format_amount(self.k)}")
        if self.order:
            parts.append("order=" + ",".join(self.order))
        if self.specialized:
            parts.append(f"specialized={','.join(self.specialized)} general={self.general}")
        return " ".join(parts) + " [" + ",".join(
            f"{s}={format_amount(a)}" for s, a in self.amounts) + "]"

    def to_dict(self) -> dict:
        out = {"strategy": self.strategy, "k": None if self.k is None else str(self.k),
               "amounts": {s: str(a) for s, a in self.amounts}}
        if self.order:
            out["order"] = list(self.order)
        if self.specialized:
            out["specialized"], out["general"] = list(self.specialized), self.general
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> Composition:
        strategy = data["strategy"]
        amounts = {s: _fraction(a) for s, a in data["amounts"].items()}
        if strategy in ("mix", BASE):
            return cls(strategy, _sorted(amounts))
        return cls.staged(strategy, amounts, k=data.get("k"), order=data.get("order", ()),
                          specialized=data.get("specialized", ()), general=data.get("general"))

    def token_ratios(self, source_tokens: Mapping[str, float]) -> dict[str, float]:
        """Each source's share of the tokens the composition trains on (its last stage's
        mixture for a mix; every stage's tokens summed otherwise), summing to 1."""
        tokens: dict[str, float] = {}
        for stage in self.stages():
            for source, amount in stage.recipe:
                tokens[source] = tokens.get(source, 0.0) + float(amount) * source_tokens[source]
        total = sum(tokens.values())
        return {s: t / total for s, t in sorted(tokens.items())} if total else {}


def _sorted(amounts: Mapping[str, Fraction | str]) -> tuple[tuple[str, Fraction], ...]:
    return tuple(sorted((s, _fraction(a)) for s, a in amounts.items()))


def _two_stage(name: str, stages: list[dict], k) -> Composition:
    """mixed sequential / DMT from their two recipes: the first stage is the specialized mix,
    the second the general source (plus k of each specialized amount for DMT)."""
    specialized = sorted(stages[0])
    general = [s for s in stages[1] if s not in stages[0]]
    if len(general) != 1:
        raise NotInSpace(f"{name}: the second stage must add exactly one general source")
    amounts = {s: _fraction(stages[0][s]) for s in specialized}
    amounts[general[0]] = _fraction(stages[1][general[0]])
    if name == "dmt":
        if k is None:
            raise NotInSpace("DMT without its k")
        return Composition.staged("dmt", amounts, k=k, specialized=specialized,
                                  general=general[0])
    return Composition.staged(name, amounts, specialized=specialized, general=general[0])
