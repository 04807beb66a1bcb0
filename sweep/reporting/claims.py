"""The paper's findings as claims, written down before any run: each with the paper's words and
section, the runs it needs, its test, and a verdict with an effect size and its 95% interval.

Verdicts: `holds` / `contradicted` (the claim's test, or the test of its opposite, significant
at 0.05 after Holm across the claims tested), `not shown` (neither; with the smallest effect
the data could have detected at 80% power), `missing runs` (with the command that runs them).
A claim's p is 2 x min(p holds, p contradicted), two-sided over its two directions. Effects are
improvements in the table's units (percentage points for accuracies; for a loss, its decrease).
An ability whose headline metric sits at the floor (every cell at or under 2%) is read through
its likelihood companion, and the verdict says so. Each claim's test and margin, fixed before
the runs, are argued in its docstring. `python -m sweep.claims --storage S [--json|--plan]`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from statistics import NormalDist

import numpy as np

from core.model import PRESETS as MODEL_PRESETS
from evals.stats import N_BOOT, Contrast, contrast, holm, joint_contrasts
from sweep.reporting.result_set import ResultSet
from sweep.reporting.tables import BUILTIN, Cells, Spot
from sweep.study.grid import rq3_held

ALPHA, POWER = 0.05, 0.80
FLOOR = 0.02  # a binary metric at or under this share in every cell is at the floor
# Margins within which an ability counts as unchanged, in raw units: 2 accuracy points; 0.05
# nats per token of held-out loss (5% perplexity); a quarter of an MT-Bench point (the paper's
# general ability moves about 0.03 from 1/4 to all of ShareGPT, LLaMA-7B, Table 2).
MARGINS = {"binary": 0.02, "general/loss": 0.05, "mtbench/mean": 0.25}
# Metrics that improve downwards: their effects are turned round (+ = lower, i.e. better), so
# that a positive effect means the same in every claim.
FALLS = ("general/loss",)
SINGLE = ("rq1", "rq2")  # where a source-alone run may come from
_N = NormalDist()


class Missing(Exception):
    """The runs a claim needs are not in the results: (what is missing, the command)."""


@dataclass
class Found:
    """A claim's outcome, as `--json` prints it."""
    id: str
    question: str
    text: str
    section: str
    test: str
    verdict: str = "missing runs"  # holds | contradicted | not shown | missing runs
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None
    p_holm: float | None = None
    p_holds: float | None = None
    p_contradicted: float | None = None
    mde: float | None = None  # not shown: the smallest effect detectable at 80% power
    unit: str = ""
    metric: str | None = None
    runs_used: list[str] = field(default_factory=list)
    detail: str = ""
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Part:
    """One tested component, in improvement units: its contrast and one-sided p values."""
    name: str
    metric: str
    c: Contrast
    runs: list[str]

    @property
    def p_up(self) -> float:
        return self.c.p / 2 if self.c.effect > 0 else 1 - self.c.p / 2

    @property
    def p_down(self) -> float:
        return self.c.p / 2 if self.c.effect < 0 else 1 - self.c.p / 2


@dataclass
class Outcome:
    """What a claim's test returns: p of each direction, the part that decides, all parts."""
    p_holds: float
    p_contradicted: float
    deciding: Part
    parts: list[Part]
    effect: Contrast | None = None  # a non-linear statistic's own (claim e); else deciding's


# ---- reading the results ---------------------------------------------------------------------

class Data:
    """The results as the claims read them: seeds by spot and metric, kinds, the preset."""

    def __init__(self, results: ResultSet, n_boot: int = N_BOOT):
        self.cells = Cells(results)
        self.n_boot = n_boot
        presets = [r.get("preset") for r in results.rows if r.get("preset")]
        self.preset = max(set(presets), key=presets.count) if presets else "local"
        self.models = self.cells.models

    def seeds(self, model: str, spot: Spot, metric: str) -> tuple[list[dict], list[str]]:
        rows = [r for r in self.cells.rows_at(model, spot, metric) if r["value"] is not None]
        if not rows:
            raise Missing(f"{spot.strategy} f={spot.fraction} k={spot.k} ({metric})")
        ids = [r["run_id"] for r in rows]
        return self.cells.results.seeds_of(ids, metric), ids

    def kind(self, metric: str) -> str:
        return next((r["kind"] for r in self.cells.rows if r["metric"] == metric), "continuous")

    def has(self, metric: str) -> bool:
        return any(r["metric"] == metric and r["value"] is not None for r in self.cells.rows)

    def fractions(self, questions, strategy: str, model: str) -> list[Fraction]:
        return sorted({Fraction(r["fraction"]) for r in self.cells.rows
                       if r["question"] in questions and r["strategy"] == strategy
                       and r["model"] == model and r["fraction"]})

    def metric_of(self, key: str, model: str, spots: list[Spot]) -> tuple[str, str]:
        """(metric, note): the ability's headline, or its companion when the headline is at
        the floor in every cell the claim reads."""
        ability = BUILTIN[key]
        if not self.has(ability.metric):
            raise Missing(f"an evaluation of {key}")
        if self.kind(ability.metric) != "binary" or not ability.companions:
            return ability.metric, ""
        means = [np.mean([np.mean(list(s.values())) for s in self.seeds(model, spot,
                                                                         ability.metric)[0]])
                 for spot in spots]
        if max(means) <= FLOOR and self.has(ability.companions[0]):
            companion = ability.companions[0]
            return companion, f"{ability.metric} at the floor in every cell: decided by {companion}"
        return ability.metric, ""

    def general_metric(self) -> str:
        return "mtbench/mean" if self.has("mtbench/mean") else "general/loss"

    def part(self, name: str, model: str, metric: str, spots: list[Spot],
             weights: list[float]) -> Part:
        cells, runs = [], []
        for spot in spots:
            seeds, ids = self.seeds(model, spot, metric)
            cells.append(seeds)
            runs += ids
        sign = -1.0 if metric in FALLS else 1.0
        c = contrast(cells, [sign * w for w in weights], [s.strategy for s in spots], metric,
                     self.n_boot)
        return Part(name, metric, c, runs)

    def unit(self, metric: str) -> tuple[float, str]:
        return (100.0, " pp") if self.kind(metric) == "binary" else (1.0, "")

    def margin(self, metric: str) -> float:
        return MARGINS.get(metric, MARGINS["binary"] if self.kind(metric) == "binary" else 0.0)


def _two(fractions: list[Fraction], what: str, command: str) -> tuple[Fraction, Fraction]:
    if len(fractions) < 2:
        raise Missing(what, command)
    return fractions[0], fractions[-1]


def within(c: Contrast, margin: float) -> tuple[float, float, float]:
    """(p of |effect| < margin (TOST), p of effect > margin, p of effect < -margin): normal
    approximations on the two-level bootstrap's standard error."""
    se = max(c.se, 1e-12)
    above = 1 - _N.cdf((c.effect - margin) / se)
    below = _N.cdf((c.effect + margin) / se)
    return max(1 - below, 1 - above), above, below


# ---- the claims --------------------------------------------------------------------------------

def claim_a(data: Data, model: str) -> Outcome:
    """Math and code accuracy rise with the amount of their own data (RQ1). Test: the accuracy
    of math alone (code alone) at the largest amount present minus that at the smallest, paired
    by item (one seed: a sign-flip test over items; several: Welch's t over seeds). Holds when
    both rise (the larger of the two one-sided p values decides: an intersection-union test);
    contradicted when either falls (Bonferroni over the two)."""
    parts = []
    for source, key in (("math", "gsm8k"), ("code", "humaneval")):
        lo, hi = _two(data.fractions(SINGLE, f"{source} only", model),
                      f"{source} alone at two amounts", f"python -m sweep.rq1 --preset {data.preset}")
        spots = [Spot(SINGLE, f"{source} only", hi), Spot(SINGLE, f"{source} only", lo)]
        metric, _ = data.metric_of(key, model, spots)
        parts.append(data.part(f"{source} alone, f={hi} vs {lo}", model, metric, spots, [1, -1]))
    deciding = max(parts, key=lambda p: p.p_up)
    return Outcome(deciding.p_up, min(1.0, 2 * min(p.p_down for p in parts)), deciding, parts)


def claim_b(data: Data, model: str) -> Outcome:
    """General ability levels off while math and code still rise (RQ1): between the two largest
    amounts present, the general ability (MT-Bench when judged, else the held-out chat loss)
    changes by less than its margin (equivalence, TOST) while math and code still rise
    (one-sided). Contradicted when general ability still rises by more than its margin."""
    fs = data.fractions(SINGLE, "general only", model)
    command = f"python -m sweep.rq1 --preset {data.preset}"
    if len(fs) < 2:
        raise Missing("general alone at two amounts", command)
    mid, top = fs[-2], fs[-1]
    general = data.general_metric()
    g = data.part(f"general alone, f={top} vs {mid}", model, general,
                  [Spot(SINGLE, "general only", top), Spot(SINGLE, "general only", mid)], [1, -1])
    rising = []
    for source, key in (("math", "gsm8k"), ("code", "humaneval")):
        spots = [Spot(SINGLE, f"{source} only", top), Spot(SINGLE, f"{source} only", mid)]
        metric, _ = data.metric_of(key, model, spots)
        rising.append(data.part(f"{source} alone, f={top} vs {mid}", model, metric, spots,
                                [1, -1]))
    tost, beyond, _ = within(g.c, data.margin(general))
    return Outcome(max(tost, *(p.p_up for p in rising)), beyond, g, [g, *rising])


def claim_c(data: Data, _model: str) -> Outcome:
    """A larger model scores higher with the same data (RQ1): math alone at the largest amount
    both sizes ran, the larger model's GSM8K accuracy minus the smaller's, paired by item."""
    sized = sorted((MODEL_PRESETS[m].params, m) for m in data.models
                   if m in MODEL_PRESETS and MODEL_PRESETS[m].params)
    command = f"python -m sweep.rq1 --preset {data.preset} --models SMALL LARGE"
    if len(sized) < 2:
        raise Missing("two model sizes", command)
    small, large = sized[0][1], sized[-1][1]
    common = sorted(set(data.fractions(SINGLE, "math only", small))
                    & set(data.fractions(SINGLE, "math only", large)))
    if not common:
        raise Missing("math alone on both sizes at one amount", command)
    spot = Spot(SINGLE, "math only", common[-1])
    metric, _ = data.metric_of("gsm8k", large, [spot])
    cells, runs = [], []
    for model in (large, small):
        seeds, ids = data.seeds(model, spot, metric)
        cells.append(seeds)
        runs += ids
    c = contrast(cells, [1, -1], [large, small], metric, data.n_boot)
    part = Part(f"{large} - {small}, math alone f={common[-1]}", metric, c, runs)
    return Outcome(part.p_up, part.p_down, part, [part])


def claim_d(data: Data, model: str) -> Outcome:
    """Mixing helps at small amounts and conflicts at large ones (RQ2): the mixed-minus-single
    difference on math (GSM8K, against math alone) at the smallest amount minus that at the
    largest, paired by item across the four runs (a difference in differences). Math is the
    pre-registered ability: it is where the paper's turning point is clearest (Fig. 3) and the
    one the local preset measures with most items."""
    fs = sorted(set(data.fractions(("rq2",), "mix", model))
                & set(data.fractions(SINGLE, "math only", model)))
    lo, hi = _two(fs, "the mix and math alone at two amounts",
                  f"python -m sweep.rq2 --preset {data.preset} --fractions 1/16,1/4")
    spots = [Spot(("rq2",), "mix", lo), Spot(SINGLE, "math only", lo),
             Spot(("rq2",), "mix", hi), Spot(SINGLE, "math only", hi)]
    metric, _ = data.metric_of("gsm8k", model, spots)
    part = data.part(f"(mix - math) at f={lo} minus at f={hi}", model, metric, spots,
                     [1, -1, -1, 1])
    return Outcome(part.p_up, part.p_down, part, [part])


def claim_e(data: Data, model: str) -> Outcome:
    """The absolute amount matters more than the ratio (RQ3): on math, the gain from the
    smallest to the largest amount of specialized data with all general data ("fixed general"),
    against the change from all to 1/64 of the general data at the smallest amount (the same
    math, a 64 times different ratio). Where the general data is held at less than all (the
    local preset's "fixed 1/4 general"), the largest held amount present stands for "all" and
    the ratio changes less (16 times locally). The statistic is |amount effect| - |ratio
    effect|, its p from the two-level bootstrap of both under the same resamples."""
    command = f"python -m sweep.rq3 --preset {data.preset} --fractions 1/4,1/16"
    held = _general_held_most(data, model)
    lo, hi = _two(data.fractions(("rq3",), held, model), f"{held} at two amounts", command)
    if lo not in data.fractions(("rq3",), "fixed 1/64 general", model):
        raise Missing(f"fixed 1/64 general at f={lo}", command)
    spots = [Spot(("rq3",), held, hi), Spot(("rq3",), held, lo),
             Spot(("rq3",), "fixed 1/64 general", lo)]
    metric, _ = data.metric_of("gsm8k", model, spots)
    cells, runs = [], []
    for spot in spots:
        seeds, ids = data.seeds(model, spot, metric)
        cells.append(seeds)
        runs += ids
    effects, boot, n = joint_contrasts(cells, [[1, -1, 0], [0, 1, -1]],
                                       [s.strategy for s in spots], metric, data.n_boot)
    stat, reps = abs(effects[0]) - abs(effects[1]), np.abs(boot[:, 0]) - np.abs(boot[:, 1])
    lo_ci, hi_ci = np.quantile(reps, [0.025, 0.975])
    p_holds = (1 + np.sum(reps <= 0)) / (1 + reps.size)
    p_contra = (1 + np.sum(reps >= 0)) / (1 + reps.size)
    seeds = tuple(len(c) for c in cells)
    summary = Contrast(float(stat), float(lo_ci), float(hi_ci), float(min(1, 2 * min(
        p_holds, p_contra))), float(reps.std(ddof=1)), n, seeds, "two-level bootstrap")
    amount = data.part(f"amount: {held} f={hi} vs {lo}", model, metric, spots[:2], [1, -1])
    ratio = data.part(f"ratio: {held} vs fixed 1/64 general at f={lo}", model, metric,
                      spots[1:], [1, -1])
    part = Part("|amount effect| - |ratio effect|", metric, summary, runs)
    return Outcome(float(p_holds), float(p_contra), part, [part, amount, ratio], summary)


def _general_held_most(data: Data, model: str) -> str:
    """The rq3 setup holding the general data at its largest amount above 1/64 ("fixed
    general" in the paper's grid); "fixed general" when none ran."""
    held = {}
    for r in data.cells.rows:
        if r["question"] == "rq3" and r["model"] == model:
            try:
                group, amount = rq3_held(r["strategy"])
            except ValueError:  # results from elsewhere may name other setups
                continue
            if group == "general" and amount > Fraction(1, 64):
                held[r["strategy"]] = amount
    return max(held, key=held.__getitem__) if held else "fixed general"


def claim_f(data: Data, model: str) -> Outcome:
    """Sequential training forgets earlier abilities, and DMT(k) recovers them without losing
    general ability beyond its margin (RQ4): on math, multi-task minus sequential (forgetting),
    DMT(k) minus mixed sequential at the largest k present (recovery), and the general ability
    of DMT(k) minus mixed sequential no worse than its margin (non-inferiority). Holds when all
    three do (the largest p decides); contradicted when any goes the other way (Bonferroni)."""
    rq4 = [r for r in data.cells.rows if r["question"] == "rq4" and r["model"] == model]
    groups = {r["fraction"] for r in rq4 if r["strategy"] == "DMT"}
    command = f"python -m sweep.rq4 --preset {data.preset}"
    if not groups:
        raise Missing("DMT runs", command)
    group = max(groups, key=lambda f: Fraction(f) if f else Fraction(1))
    amount = Fraction(group) if group else None
    k = max(Fraction(r["k"]) for r in rq4 if r["strategy"] == "DMT" and r["fraction"] == group)
    spot = {s: Spot(("rq4",), s, amount) for s in ("multi-task", "sequential",
                                                     "mixed sequential")}
    dmt = Spot(("rq4",), "DMT", amount, k)
    metric, _ = data.metric_of("gsm8k", model, [spot["multi-task"], spot["sequential"]])
    forget = data.part("forgetting: multi-task - sequential", model, metric,
                       [spot["multi-task"], spot["sequential"]], [1, -1])
    recover = data.part(f"recovery: DMT(k={k}) - mixed sequential", model, metric,
                        [dmt, spot["mixed sequential"]], [1, -1])
    general = data.general_metric()
    keep = data.part(f"general: DMT(k={k}) - mixed sequential", model, general,
                     [dmt, spot["mixed sequential"]], [1, -1])
    _, _, lost = within(keep.c, data.margin(general))
    not_lost = 1 - lost
    p_holds = max(forget.p_up, recover.p_up, not_lost)
    deciding = max((forget, recover, keep), key=lambda p: p.p_up if p is not keep else not_lost)
    return Outcome(p_holds, min(1.0, 3 * min(forget.p_down, recover.p_down, lost)), deciding,
                   [forget, recover, keep])


@dataclass(frozen=True)
class Claim:
    id: str
    question: str
    text: str  # the paper's words
    section: str
    test: Callable[[Data, str], Outcome]


CLAIMS = (
    Claim("a", "rq1", "Mathematical reasoning and code generation improve as data amounts "
          "increase consistently", "Abstract; 3.2 (Fig. 2)", claim_a),
    Claim("b", "rq1", "the general ability is enhanced with about a thousand samples and "
          "improves slowly", "Abstract; 3.2 (Fig. 2)", claim_b),
    Claim("c", "rq1", "larger models show better performances with the same data amount "
          "generally", "1 (findings); 3.2", claim_c),
    Claim("d", "rq2", "Abilities are improved with low-resource and are decreased with "
          "high-resource compared to individual source abilities", "3.3 (Fig. 3)", claim_d),
    Claim("e", "rq3", "Data amounts directly influence each ability, while the data ratio is "
          "insignificant", "1 (findings); 3.4 (Fig. 4)", claim_e),
    Claim("f", "rq4", "sequential training results in catastrophic forgetting. Our proposed DMT "
          "effectively alleviates both performance conflicts and catastrophic forgetting",
          "1 (findings); 3.5 (Table 1)", claim_f),
)


# ---- verdicts ----------------------------------------------------------------------------------

def evaluate_claims(results: ResultSet, model: str | None = None,
                    n_boot: int = N_BOOT) -> list[Found]:
    """Every claim on the results (on `model`, default the first the results have), with Holm
    across the claims tested."""
    data = Data(results, n_boot)
    model = model or (data.models[0] if data.models else "")
    found = [_one(claim, data, model) for claim in CLAIMS]
    tested = [f for f in found if f.p is not None]
    for f, p in zip(tested, holm([f.p for f in tested]), strict=True):
        f.p_holm = p
        if p >= ALPHA:
            f.verdict = "not shown"
        else:
            f.verdict = "holds" if f.p_holds <= f.p_contradicted else "contradicted"
    return found


def _one(claim: Claim, data: Data, model: str) -> Found:
    doc = claim.test.__doc__ or ""
    found = Found(claim.id, claim.question, claim.text, claim.section, " ".join(doc.split()))
    try:
        outcome = claim.test(data, model)
    except Missing as missing:
        found.detail = f"needs {missing.args[0]}"
        found.missing = [missing.args[1]] if len(missing.args) > 1 else []
        return found
    except FileNotFoundError as err:  # a run's per-item outcomes are not in the results
        found.detail = f"needs per-item outcomes: {err}"
        return found
    c = outcome.effect or outcome.deciding.c
    scale, unit = data.unit(outcome.deciding.metric)
    found.effect, found.ci_low, found.ci_high = (c.effect * scale, c.ci_low * scale,
                                                 c.ci_high * scale)
    found.unit, found.metric = unit.strip(), outcome.deciding.metric
    found.p_holds, found.p_contradicted = float(outcome.p_holds), float(outcome.p_contradicted)
    found.p = float(min(1.0, 2 * min(outcome.p_holds, outcome.p_contradicted)))
    found.mde = (_N.inv_cdf(1 - ALPHA / 2) + _N.inv_cdf(POWER)) * c.se * scale
    found.runs_used = sorted({r for p in outcome.parts for r in p.runs})
    found.detail = "; ".join(_part_text(p, data) for p in outcome.parts)
    return found


def metric_label(metric: str) -> str:
    """The metric as the claims' text names it, saying when its effects are turned round."""
    return f"{metric} (+ = lower)" if metric in FALLS else metric


def _part_text(part: Part, data: Data) -> str:
    scale, unit = data.unit(part.metric)
    c = part.c
    return (f"{part.name} on {metric_label(part.metric)}: {c.effect * scale:+.3g}{unit} "
            f"[{c.ci_low * scale:+.3g}, {c.ci_high * scale:+.3g}], n={c.n}, seeds "
            f"{'/'.join(map(str, c.seeds))}, {c.test}")


def plan(results: ResultSet | None, preset: str = "local") -> list[tuple[str, str]]:
    """(claim, command) for every claim whose runs are missing (all of them without results)."""
    if results is None:
        return [(c.id, f"python -m sweep.{c.question} --preset {preset}") for c in CLAIMS]
    return [(f.id, cmd) for f in evaluate_claims(results) for cmd in f.missing]


def render_claims(found: list[Found]) -> str:
    """The report's section: one row per claim."""
    if not found:
        return ""
    lines = ["## Claims", "",
             ("The paper's findings as tested claims (`python -m sweep.claims`; Holm across the "
              "claims tested; effects are improvements, in pp for accuracies):"), "",
             "| claim | paper (section) | verdict | effect [95% CI] | p (Holm) | detail |",
             "|---|---|---|---|---|---|"]
    for f in found:
        effect = "—" if f.effect is None else \
            f"{f.effect:+.3g}{' ' + f.unit if f.unit else ''} [{f.ci_low:+.3g}, {f.ci_high:+.3g}]"
        p = "—" if f.p_holm is None else f"{f.p_holm:.2g}"
        verdict = f.verdict + (f" (detectable: {f.mde:.3g}{' ' + f.unit if f.unit else ''})"
                               if f.verdict == "not shown" else "")
        more = f.detail + (f"; run: `{'`, `'.join(f.missing)}`" if f.missing else "")
        lines.append(f"| ({f.id}) {f.question} | \"{f.text}\" ({f.section}) | {verdict} | "
                     f"{effect} | {p} | {more} |")
    return "\n".join(lines) + "\n"
