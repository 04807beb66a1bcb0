"""Samples and token lengths of each of a preset's sources, for the dry run, with how each is known.

A built-in corpus: its size in the preset and the committed histogram of the generator's
rows ("builtin" group of sweep/planning/length_histograms.json). One of the paper's sources
where the paper preset puts it: the paper's sample count and the public stand-in's
histogram ("paper" group). Any other source (a user's file): counted by the trainer's own
reader and its lengths estimated from characters (sweep/planning/source_scan.py). A source
that cannot be read here (a hub id offline, a missing file) counts 0 samples, and the plan
names it, so its stages' tokens are known to be missing rather than wrong.
    python -m sweep.rq2 --source a=FILE --source b=FILE --dry-run
"""

from __future__ import annotations

from dataclasses import dataclass

from sweep.planning import lengths
from sweep.planning.source_scan import scan
from sweep.study.presets import PAPER_SOURCES, Preset
from trainers.data.source_spec import NOCM, NOCM_BASE

# Samples per source in the paper (GRID.md: GSM8K-RFT 110,142; Code Alpaca 20,022; ShareGPT
# ~86,060; ShareGPT without code/math ~63K, section 4.2).
PAPER_SIZES = {"math": 110_142, "code": 20_022, "general": 86_060, "general_nocm": 63_000}
PAPER_LOCATIONS = {s.name: s.location for s in PAPER_SOURCES}


@dataclass(frozen=True)
class SourceFigures:
    sizes: dict[str, int]  # samples per source
    histograms: dict[str, dict[int, int]]  # tokens per sample -> samples
    how: dict[str, str]  # "builtin", "paper", "scanned", or "unknown: why"

    def unknown(self) -> dict[str, str]:
        return {n: h for n, h in self.how.items() if h.startswith("unknown")}


def source_figures(preset: Preset) -> SourceFigures:
    sizes: dict[str, int] = {}
    hists: dict[str, dict[int, int]] = {}
    how: dict[str, str] = {}
    if preset.builtin_corpora:
        builtin = lengths.histograms("builtin")
        corpus = dict(preset.corpus_sizes)
        corpus.setdefault(NOCM, corpus.get(NOCM_BASE, 0))  # an upper bound: tagging removes some
        for name, size in corpus.items():
            if name in builtin:
                sizes[name], hists[name], how[name] = size, builtin[name], "builtin"
    paper = lengths.histograms("paper")
    for spec in preset.sources:
        name = spec.name
        if spec.location == PAPER_LOCATIONS.get(name) and name in PAPER_SIZES:
            sizes[name], hists[name], how[name] = PAPER_SIZES[name], paper[name], "paper"
            continue
        found = scan(spec.location, spec.format, spec.content)
        if found is None or not found.samples:
            why = "no valid samples" if found else "not readable here (offline hub id or missing)"
            sizes[name], hists[name], how[name] = 0, {}, f"unknown: {why}"
        else:
            sizes[name], hists[name], how[name] = found.samples, found.histogram, "scanned"
    return SourceFigures(sizes, hists, how)


def source_tokens_of_preset(preset: Preset) -> dict[str, float]:
    """Tokens in all of each source: samples x mean tokens at the preset's max_len (the
    ratios over tokens of sweep.recommend's Olmix export and sweep.search --ratios)."""
    figures = source_figures(preset)
    return {s: n * lengths.mean_length(figures.histograms[s], preset.settings.max_len)
            for s, n in figures.sizes.items() if n and figures.histograms.get(s)}
