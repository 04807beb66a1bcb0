"""Token lengths per source for the dry run: real tokens and the tokens the trainer processes.

The lengths come from sweep/planning/length_histograms.json (written by scripts/length_histograms.py:
the trainer's reader and template, SmolLM2's tokenizer, public stand-ins for the paper's
corpora; its `assumption` field says what that implies). A histogram maps a row length in
tokens to its number of samples; lengths are capped at the stage's max_len here.

Real tokens of an epoch: sum over sources of samples x mean capped length.
Processed tokens, packing off: each worker's micro-batch of b rows is right-padded to its
longest row (trainers.data.collate.collate_padded), so it costs b x max(lengths). The epoch
order is a seeded hash sort across all the stage's sources (trainers.data.pipeline), so a
micro-batch is modelled as b independent draws from the stage's mixture (each source weighted
by its sample count), and the expected cost is computed exactly, without sampling, so the
output is deterministic:  E[max of b] = sum_L L x (F(L)^b - F(L-1)^b), F the mixture's CDF.
An epoch of N rows = floor(N/b) full micro-batches plus one of N mod b rows (the last step of
an epoch may split its rows over several workers: under one global batch of difference).
Draws with replacement differ negligibly from without for corpora of thousands of samples.
Packing on: a micro-batch is one packed row, no padding: processed = real.
    python -c "from sweep.planning.lengths import mean_lengths as m; print(m('paper', 2048))"
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path

HISTOGRAMS = Path(__file__).with_name("length_histograms.json")
Histogram = Mapping[int, int]  # row length in tokens -> samples


@cache
def _load(path: str) -> dict:
    return json.loads(Path(path).read_text())


def histograms(group: str, path: Path = HISTOGRAMS) -> dict[str, dict[int, int]]:
    """Source name -> histogram of `group` ("paper": the paper's sources' stand-ins, "builtin":
    the synthetic corpora of the smoke/local presets)."""
    data = _load(str(path))[group]
    return {name: {int(n): c for n, c in h["counts"].items()} for name, h in data.items()}


def capped(hist: Histogram, max_len: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for n, c in hist.items():
        out[min(n, max_len)] = out.get(min(n, max_len), 0) + c
    return out


def mean_length(hist: Histogram, max_len: int) -> float:
    h = capped(hist, max_len)
    return sum(n * c for n, c in h.items()) / sum(h.values())


def mean_lengths(group: str, max_len: int) -> dict[str, float]:
    return {name: round(mean_length(h, max_len), 1) for name, h in histograms(group).items()}


def mixture(parts: Mapping[str, int], hists: Mapping[str, Histogram],
            max_len: int) -> list[tuple[int, float]]:
    """(length, probability) in increasing length of one row drawn from the sources, each
    weighted by its sample count in `parts`."""
    total = sum(parts.values())
    probs: dict[int, float] = {}
    for source, n in parts.items():
        if n == 0:
            continue
        h = capped(hists[source], max_len)
        size = sum(h.values())
        for length, c in h.items():
            probs[length] = probs.get(length, 0.0) + (n / total) * (c / size)
    return sorted(probs.items())


def expected_longest(pmf: list[tuple[int, float]], b: int) -> float:
    """E[max of b independent draws] from `pmf`: sum_L L x (F(L)^b - F(L-1)^b)."""
    out, below = 0.0, 0.0
    for length, p in pmf:
        at = min(below + p, 1.0)
        out += length * (at ** b - below ** b)
        below = at
    return out


def epoch_tokens(parts: Mapping[str, int], hists: Mapping[str, Histogram], max_len: int,
                 micro_batch: int, packing: bool) -> tuple[float, float]:
    """(real, processed) tokens of one epoch over `parts` (source -> selected samples)."""
    parts = {s: n for s, n in parts.items() if n}
    if not parts:
        return 0.0, 0.0
    real = sum(n * mean_length(hists[s], max_len) for s, n in parts.items())
    if packing or micro_batch == 1:
        return real, real
    pmf = mixture(parts, hists, max_len)
    full, rest = divmod(sum(parts.values()), micro_batch)
    processed = full * micro_batch * expected_longest(pmf, micro_batch)
    if rest:
        processed += rest * expected_longest(pmf, rest)
    return real, processed
