"""What a stage's data build read, kept, rejected, selected and tokenized, per source: the
`DataReport` that `trainers.data.pipeline.build_stage_dataset` returns, that the data command
prints (`python -m trainers.data`) and that every stage manifest stores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from trainers.data.recipe import format_recipe
from trainers.data.records import Rejects


@dataclass(frozen=True)
class TokenStats:
    samples: int = 0
    total: int = 0
    mean: float = 0.0
    p95: int = 0
    max: int = 0

    @classmethod
    def of(cls, n_tokens: Iterable[int]) -> TokenStats:
        arr = np.asarray(list(n_tokens), dtype=np.int64)
        if not len(arr):
            return cls()
        p95 = int(np.percentile(arr, 95, method="higher"))
        return cls(len(arr), int(arr.sum()), round(float(arr.mean()), 2), p95, int(arr.max()))


@dataclass(frozen=True)
class SourceReport:
    """One source: rows read = kept + rejected; selected of kept; format rejects of selected."""

    name: str
    location: str
    amount: str
    read: int
    kept: int
    rejects: dict
    selected: int
    format_rejects: dict
    truncated: int
    used: int
    tokens: TokenStats


@dataclass(frozen=True)
class DataReport:
    recipe: str
    seed: int
    epochs: int
    max_len: int
    overlong: str
    tokenizer: str
    sources: tuple[SourceReport, ...]
    rows_per_epoch: int
    tokens: TokenStats  # over the samples of one epoch (each record once)
    truncated: int
    dropped: int  # selected samples left out at tokenization (format rejects, over-long drops)

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        lines = [(f"recipe {self.recipe}  seed {self.seed}  epochs {self.epochs}  "
                 f"max_len {self.max_len} ({self.overlong})  tokenizer {self.tokenizer}")]
        for s in self.sources:
            lines.append(f"[{s.name}] {s.location}  amount {s.amount}")
            lines.append(f"  read {s.read}  kept {s.kept}  rejected {s.read - s.kept}  "
                         f"selected {s.selected}  used {s.used}  truncated {s.truncated}")
            lines.append(Rejects.from_dict(s.rejects).report("  "))
            if s.format_rejects:
                lines.append(f"  format rejects: {s.format_rejects}")
            lines.append(f"  tokens {_stats(s.tokens)}")
        lines.append(f"total: {self.rows_per_epoch} rows per epoch, tokens {_stats(self.tokens)}, "
                     f"truncated {self.truncated}, dropped {self.dropped}")
        return "\n".join(lines)


def _stats(t: TokenStats) -> str:
    return f"total {t.total}  mean {t.mean}  p95 {t.p95}  max {t.max}"


def build_data_report(recipe, counts, outcome, *, seed, epochs, max_len, overlong, tokenizer_name):
    sources = []
    for c in counts:
        mine = outcome[outcome["source"] == c["name"]]
        ok = mine[mine["reject_reason"] == ""]
        fr = Counter(mine.loc[mine["reject_reason"] != "", "reject_reason"])
        sources.append(SourceReport(**c, format_rejects=dict(sorted(fr.items())),
                                    truncated=int(ok["truncated"].sum()), used=len(ok),
                                    tokens=TokenStats.of(ok["n_tokens"])))
    kept = outcome[outcome["reject_reason"] == ""]
    return DataReport(format_recipe(recipe), seed, epochs, max_len, overlong, tokenizer_name,
                      tuple(sources), len(kept), TokenStats.of(kept["n_tokens"]),
                      int(kept["truncated"].sum()), len(outcome) - len(kept))

