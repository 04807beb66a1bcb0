"""A composition as the numbers the fits read.

Per source: whether it is present (0/1) and log2 of its amount (0 when absent: the indicator
carries the difference, so a left-out source is never log2 of 0); per strategy other than a
plain mix: an indicator; DMT: log2 k. Optionally (the Data Mixing Laws form) each source's
share of the tokens trained on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from sweep.study.candidates import BASE, Composition


@dataclass(frozen=True)
class FeatureSpace:
    sources: tuple[str, ...]
    strategies: tuple[str, ...]  # those seen besides "mix" and the base model

    @classmethod
    def of(cls, compositions: Sequence[Composition]) -> FeatureSpace:
        sources = sorted({s for c in compositions for s in c.sources})
        strategies = sorted({c.strategy for c in compositions} - {"mix", BASE})
        return cls(tuple(sources), tuple(strategies))

    def names(self) -> list[str]:
        return ([f"has_{s}" for s in self.sources] + [f"log2_{s}" for s in self.sources]
                + [f"is_{s}" for s in self.strategies]
                + (["log2_k"] if "dmt" in self.strategies else []))

    def row(self, c: Composition) -> list[float]:
        amounts = dict(c.amounts)
        out = [1.0 if s in amounts else 0.0 for s in self.sources]
        out += [math.log2(amounts[s]) if s in amounts else 0.0 for s in self.sources]
        out += [1.0 if c.strategy == s else 0.0 for s in self.strategies]
        if "dmt" in self.strategies:
            out.append(math.log2(c.k) if c.k is not None else 0.0)
        return out

    def matrix(self, compositions: Sequence[Composition]) -> np.ndarray:
        return np.array([self.row(c) for c in compositions], dtype=float).reshape(
            len(compositions), len(self.names()))


def ratios(compositions: Sequence[Composition], sources: Sequence[str],
           source_tokens: Mapping[str, float] | None) -> np.ndarray:
    """Each composition's token shares over `sources` (equal tokens per sample of every
    source when their sizes are not known: then shares of the amounts)."""
    tokens = source_tokens or dict.fromkeys(sources, 1.0)
    rows = []
    for c in compositions:
        shares = c.token_ratios(tokens)
        rows.append([shares.get(s, 0.0) for s in sources])
    return np.array(rows, dtype=float).reshape(len(compositions), len(sources))
