"""Dry run: every run of a sweep with its stages, the stages left after sharing, and the cost.

Needs no GPU and no data: token counts come from the paper's corpus sizes (GRID.md) or the
built-in corpora's sizes, times per-source mean lengths stated in MEAN_TOKENS. For GPU presets
it estimates GPU hours as 6 x params x tokens / (peak FLOP/s x an assumed MFU).
    python -m sweep.rq4 --preset paper --dry-run [--json]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from sweep.grid import Run
from sweep.presets import Preset, gpus_per_run, train_settings
from trainers import identity
from trainers.data.builtin_sources import builtin_fingerprint
from trainers.data.recipe import Amount, format_recipe
from trainers.data.selection import count_for
from trainers.data.sources import NOCM, NOCM_BASE
from trainers.model import PRESETS as MODEL_PRESETS

# Samples per source in the paper (GRID.md: GSM8K-RFT 110,142; Code Alpaca 20,022; ShareGPT
# ~86,060; ShareGPT without code/math ~63K, section 4.2).
PAPER_SIZES = {"math": 110_142, "code": 20_022, "general": 86_060, "general_nocm": 63_000}
# Mean tokens per sample with the Vicuna template, capped at max_len 2048. Measured here on the
# public copies in ../shared/data with the SmolLM2 tokenizer (LLaMA's tokenizer gives roughly
# 10-20% more): GSM8K worked answers 219 (RFT paths are of the same kind), Code Alpaca 164,
# a 1,011-conversation ShareGPT V3 sample 1,447 (general_nocm assumed the same).
MEAN_TOKENS = {"math": 220, "code": 165, "general": 1450, "general_nocm": 1450}
# The built-in synthetic corpora (trainers.data.corpora), measured the same way.
BUILTIN_MEAN_TOKENS = {"math": 130, "code": 109, "general": 344, "general_nocm": 344}
A100_PEAK_BF16 = 312e12  # FLOP/s, dense bf16
ASSUMED_MFU = 0.40  # model FLOPs utilisation assumed for DeepSpeed ZeRO-3 on 8-16 A100s


@dataclass(frozen=True)
class PlannedStage:
    stage_id: str
    model: str
    recipe_text: str
    samples: int  # selected samples per epoch
    tokens: int  # training tokens: epochs x sum(selected samples x mean tokens)
    gpu_hours: float | None


@dataclass(frozen=True)
class PlannedRun:
    run: Run
    run_id: str
    stage_ids: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    preset: str
    runs: tuple[PlannedRun, ...]
    stages: dict  # stage id -> PlannedStage (unique stages after sharing)
    naive_stages: int
    naive_tokens: int
    naive_gpu_hours: float | None

    @property
    def shared_tokens(self) -> int:
        return sum(s.tokens for s in self.stages.values())

    @property
    def gpu_hours(self) -> float | None:
        hours = [s.gpu_hours for s in self.stages.values()]
        return None if not hours or None in hours else sum(hours)


def corpus_sizes(preset: Preset) -> dict[str, int]:
    """Samples per source: the paper's sizes, or the built-in corpora's."""
    if preset.sources:
        return dict(PAPER_SIZES)
    sizes = dict(preset.corpus_sizes)
    sizes.setdefault(NOCM, sizes[NOCM_BASE])  # an upper bound: tagging removes some
    return sizes


def stage_tokens(recipe, preset: Preset, sizes: dict[str, int]) -> tuple[int, int]:
    """(selected samples, training tokens) of one stage."""
    settings = preset.settings
    means = MEAN_TOKENS if preset.sources else BUILTIN_MEAN_TOKENS
    counts = {source: _count(amount, sizes[source]) for source, amount in recipe}
    per_epoch = sum(n * min(means[s], settings.max_len) for s, n in counts.items())
    return sum(counts.values()), settings.epochs * per_epoch


def _count(amount: Amount, n: int) -> int:
    return count_for(amount, n) if isinstance(amount, Fraction) else min(amount, n)


def stage_gpu_hours(model: str, tokens: int, preset: Preset) -> float | None:
    if not preset.hardware.use_gpu:
        return None
    params = MODEL_PRESETS[model].params
    return 6 * params * tokens / (A100_PEAK_BF16 * ASSUMED_MFU) / 3600


def sources_fingerprint(preset: Preset) -> dict:
    """What identifies each source, as trainers.identity hashes it: the preset's own sources
    by where they are, the built-in corpora by what fixes their bytes (trainers.data.builtin_sources)."""
    if preset.sources:
        return identity.fingerprint_sources({s.name: s for s in preset.sources})
    return builtin_fingerprint(dict(preset.corpus_sizes), preset.data_seed)


SEED_VARIES = ("both", "data", "train")


def seeded(run: Run, preset: Preset, workers: int | None = None):
    """(settings, data seed) of one replicate. Seed s offsets the data seed (which subset is
    selected and in which order) and the training seed (initialisation of anything random,
    dropout) by s, or only one of them (`preset.seed_varies`). Seed 0 is the preset itself, so
    adding seeds never renames the runs already done. The built-in corpora stay those of
    `preset.data_seed`: a replicate draws another subset of the same data, not other data.
    `workers`: Train workers when not the preset's (the finetune command's --workers)."""
    settings = train_settings(preset, run.model, workers)
    if preset.seed_varies not in SEED_VARIES:
        raise ValueError(f"seed_varies={preset.seed_varies!r}: one of {SEED_VARIES}")
    data_seed = preset.data_seed
    if run.seed and preset.seed_varies in ("both", "data"):
        data_seed += run.seed
    if run.seed and preset.seed_varies in ("both", "train"):
        settings = replace(settings, seed=settings.seed + run.seed)
    return settings, data_seed


def run_stage_ids(run: Run, preset: Preset) -> list[str]:
    settings, data_seed = seeded(run, preset)
    return identity.stage_ids(run.model, run.stages, settings, data_seed,
                              sources_fingerprint(preset))


def run_id(run: Run, preset: Preset, ids: Sequence[str] | None = None) -> str:
    """Names the run's result file and Tune trial: its training chain (identity.run_id), where
    it sits in the paper (question, strategy, f, k) and what is measured (the evaluation)."""
    ids = run_stage_ids(run, preset) if ids is None else ids
    ev = preset.evaluation
    digest = identity.content_hash({
        "kind": "sweep-run", "train": identity.run_id(run.model, list(ids)),
        "question": run.question, "strategy": run.strategy,
        "fraction": _text(run.fraction), "k": _text(run.k), "seed": run.seed,
        "evals": evaluation_identity(ev),
    })
    return f"{run.question}-{_slug(run.strategy)}-{digest[:10]}"


def evaluation_identity(ev) -> list:
    """What of the evaluation decides a run's numbers (names, item counts, data, judge, caps)."""
    return [list(ev.names), ev.limit, [list(p) for p in ev.limits], ev.judge_model, ev.gsm8k,
            ev.general_heldout, ev.max_new_tokens]


def _text(x: Fraction | None) -> str | None:
    return None if x is None else f"{x.numerator}/{x.denominator}"


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def build_plan(runs: Sequence[Run], preset: Preset) -> Plan:
    sizes = corpus_sizes(preset)
    planned, stages = [], {}
    naive_stages, naive_tokens, naive_hours = 0, 0, 0.0
    seen = set()
    for run in runs:
        ids = run_stage_ids(run, preset)
        rid = run_id(run, preset, ids)
        if rid in seen:  # the same run named by two questions (rq2's singles are rq1's)
            continue
        seen.add(rid)
        for sid, stage in zip(ids, run.stages, strict=True):
            samples, tokens = stage_tokens(stage.recipe, preset, sizes)
            hours = stage_gpu_hours(run.model, tokens, preset)
            naive_stages, naive_tokens = naive_stages + 1, naive_tokens + tokens
            naive_hours = None if hours is None or naive_hours is None else naive_hours + hours
            stages.setdefault(sid, PlannedStage(sid, run.model, format_recipe(stage.recipe),
                                                samples, tokens, hours))
        planned.append(PlannedRun(run, rid, tuple(ids)))
    return Plan(preset.name, tuple(planned), stages, naive_stages, naive_tokens,
                naive_hours if runs else None)


def plan_json(plan: Plan) -> dict:
    return {
        "preset": plan.preset,
        "runs": [{"id": p.run_id, "question": p.run.question, "model": p.run.model,
                  "strategy": p.run.strategy, "fraction": _text(p.run.fraction),
                  "k": _text(p.run.k), "seed": p.run.seed, "stage_ids": list(p.stage_ids)}
                 for p in plan.runs],
        "unique_stages": len(plan.stages),
        "naive_stages": plan.naive_stages,
        "naive_tokens": plan.naive_tokens,
        "shared_tokens": plan.shared_tokens,
        "gpu_hours": plan.gpu_hours,
        "naive_gpu_hours": plan.naive_gpu_hours,
        "stages": {sid: {"model": s.model, "recipe": s.recipe_text, "samples": s.samples,
                         "tokens": s.tokens, "gpu_hours": s.gpu_hours}
                   for sid, s in plan.stages.items()},
        "assumptions": assumptions(),
    }


def assumptions() -> dict:
    return {"mean_tokens": MEAN_TOKENS, "builtin_mean_tokens": BUILTIN_MEAN_TOKENS,
            "paper_sizes": PAPER_SIZES,
            "peak_flops_per_gpu": A100_PEAK_BF16, "mfu": ASSUMED_MFU,
            "formula": "gpu_hours = 6 x params x tokens / (peak x MFU) / 3600"}


def format_plan(plan: Plan, preset: Preset) -> str:
    lines = [f"plan for preset {plan.preset}: {len(plan.runs)} runs"]
    for p in plan.runs:
        chain = " -> ".join(f"[{format_recipe(s.recipe)}]" for s in p.run.stages) or "(base)"
        lines.append(f"  {p.run_id}  {p.run.label}: {chain}")
        lines.append(f"      stages {' -> '.join(p.stage_ids) or '-'}")
    lines.append(f"unique stages after sharing: {len(plan.stages)}")
    for s in plan.stages.values():
        hours = f", {s.gpu_hours:,.1f} GPU h" if s.gpu_hours is not None else ""
        lines.append(f"  {s.stage_id}  {s.model} [{s.recipe_text}] {s.samples:,} samples, "
                     f"{s.tokens:,} tokens{hours}")
    lines.append(f"stages: naive {plan.naive_stages}, shared {len(plan.stages)}; training tokens: "
                 f"naive {plan.naive_tokens:,}, shared {plan.shared_tokens:,}")
    if plan.gpu_hours is not None:
        walls = {m: gpus_per_run(preset, m) for m in {p.run.model for p in plan.runs}}
        lines.append(
            f"GPU hours (A100 bf16 peak {A100_PEAK_BF16 / 1e12:.0f} TFLOP/s, assumed MFU "
            f"{ASSUMED_MFU:.0%}): naive {plan.naive_gpu_hours:,.0f}, shared {plan.gpu_hours:,.0f};"
            f" GPUs per run {walls}")
    means = MEAN_TOKENS if preset.sources else BUILTIN_MEAN_TOKENS
    lines.append(f"mean tokens per sample assumed (see sweep/plan.py): {means}")
    return "\n".join(lines)
