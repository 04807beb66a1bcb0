"""What `sweep.search` searches: the candidate space (sweep/study/candidates.py) as flat
dimensions a sampler can draw from, and back.

Levels (the default): per source a choice among "absent" and the levels 1 ... 1/256 (as
"p/q"), a choice of strategy when several are allowed, and DMT's k. A staged strategy needs
every one of its sources: there "absent" reads as the least level (1/256), so every draw is a
composition. Ratios (`ratios=True`, mixes only): per source a weight in [0, 1] and a total
among the levels; the weights normalised are the ratios over tokens on the simplex, and
`Composition.from_ratios` puts each source on its nearest level. `config_of` maps a
composition back (the finished runs a search starts from); `grid()` is every point of the
levels space (what a full grid would train).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from sweep.study.candidates import BASE, LEVELS, Composition, NotInSpace, snap

ABSENT = "absent"
LEAST = LEVELS[-1]


@dataclass(frozen=True)
class SearchSpace:
    sources: tuple[str, ...]
    strategies: tuple[str, ...] = ("mix",)
    specialized: tuple[str, ...] = ()  # mixed_sequential, dmt
    general: str | None = None
    order: tuple[str, ...] = ()  # sequential
    ratios: bool = False
    source_tokens: Mapping[str, float] | None = None  # ratios: tokens in all of each source

    def __post_init__(self):
        if self.ratios and self.strategies != ("mix",):
            raise ValueError("ratios over tokens describe one-stage mixes only")
        if self.ratios and not self.source_tokens:
            raise ValueError("ratios need each source's tokens")
        staged = set(self.strategies) & {"mixed_sequential", "dmt"}
        if staged and not (self.specialized and self.general):
            raise ValueError(f"{sorted(staged)} need the specialized sources and the general one")
        if "sequential" in self.strategies and not self.order:
            raise ValueError("sequential needs an order")

    def dimensions(self) -> dict[str, tuple]:
        """name -> ("choice", options) or ("uniform", low, high)."""
        dims: dict[str, tuple] = {}
        if len(self.strategies) > 1:
            dims["strategy"] = ("choice", self.strategies)
        if self.ratios:
            dims.update({f"w_{s}": ("uniform", 0.0, 1.0) for s in self.sources})
            dims["total"] = ("choice", tuple(str(x) for x in LEVELS))
            return dims
        levels = (ABSENT, *(str(x) for x in LEVELS))
        dims.update({f"amount_{s}": ("choice", levels) for s in self.sources})
        if "dmt" in self.strategies:
            dims["k"] = ("choice", tuple(str(x) for x in LEVELS))
        return dims

    def composition(self, config: Mapping) -> Composition:
        strategy = config.get("strategy", self.strategies[0])
        if self.ratios:
            weights = {s: float(config[f"w_{s}"]) for s in self.sources}
            if not any(weights.values()):
                return Composition(BASE, ())
            return Composition.from_ratios(weights, float(_level(config["total"])),
                                           self.source_tokens)
        drawn = {s: config[f"amount_{s}"] for s in self.sources}
        if strategy == "mix":
            amounts = {s: _level(a) for s, a in drawn.items() if a != ABSENT}
            return Composition.mix(amounts) if amounts else Composition(BASE, ())
        needed = self.order if strategy == "sequential" else (*self.specialized, self.general)
        amounts = {s: LEAST if drawn[s] == ABSENT else _level(drawn[s]) for s in needed}
        return Composition.staged(strategy, amounts, k=config.get("k") if strategy == "dmt"
                                  else None, order=self.order if strategy == "sequential"
                                  else (), specialized=self.specialized if strategy != "sequential"
                                  else (), general=self.general if strategy != "sequential"
                                  else None)

    def config_of(self, c: Composition) -> dict | None:
        """The config that draws `c`, or None when the space cannot (another strategy or
        group, a source outside the space, a level off the grid)."""
        if c.strategy not in (*self.strategies, BASE) or set(c.sources) - set(self.sources):
            return None
        if c.strategy in ("mixed_sequential", "dmt") and (
                c.specialized != tuple(sorted(self.specialized)) or c.general != self.general):
            return None
        if c.strategy == "sequential" and c.order != self.order:
            return None
        config: dict = {}
        if len(self.strategies) > 1:
            config["strategy"] = "mix" if c.strategy == BASE else c.strategy
        if self.ratios:
            shares = c.token_ratios(self.source_tokens) if c.amounts else {}
            config.update({f"w_{s}": shares.get(s, 0.0) for s in self.sources})
            used = sum(float(a) * self.source_tokens[s] for s, a in c.amounts)
            everything = sum(self.source_tokens[s] for s in self.sources)
            config["total"] = str(_snap_total(used / everything if everything else 1.0))
            return config
        if any(a not in LEVELS for _, a in c.amounts):
            return None
        config.update({f"amount_{s}": str(c.amount_of(s)) if c.amount_of(s) else ABSENT
                       for s in self.sources})
        if "dmt" in self.strategies:
            config["k"] = str(c.k if c.k is not None else LEVELS[0])
        return config

    def grid(self) -> list[Composition]:
        """Every distinct composition of the levels space."""
        if self.ratios:
            raise ValueError("the ratios space is continuous: it has no grid")
        dims = self.dimensions()
        names = list(dims)
        seen: dict[str, Composition] = {}
        for values in itertools.product(*(dims[n][1] for n in names)):
            c = self.composition(dict(zip(names, values)))
            seen.setdefault(c.key(), c)
        return list(seen.values())


def _level(text) -> Fraction:
    return Fraction(text)


def _snap_total(share: float) -> Fraction:
    return snap(min(1.0, max(share, float(LEAST))))


def space_from_runs(compositions: Sequence[Composition], **kwargs) -> SearchSpace:
    """The levels space over the sources a set of runs used (mixes unless told otherwise)."""
    sources = tuple(sorted({s for c in compositions for s in c.sources}))
    if not sources:
        raise NotInSpace("no source in these runs")
    return SearchSpace(sources, **kwargs)
