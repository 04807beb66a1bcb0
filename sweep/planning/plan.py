"""Dry run: every run of a sweep with its stages, the stages left after sharing, and the cost.

Needs no GPU and no data. Samples per source: the paper's corpus sizes (GRID.md), the built-in
corpora's, or a user's file counted by the trainer's reader (sweep/planning/source_sizes.py). Tokens per sample: the committed length histograms (sweep/planning/lengths.py), capped at
max_len: `tokens` are the real tokens, `processed_tokens` what the trainer computes on (padded
micro-batches when packing is off; equal to the real tokens with packing). For GPU presets:
gpu_hours = 6 x params x processed tokens / (peak x MFU) / 3600: by default the A100 bf16 peak and
an assumed MFU; `--mfu 0.35` sets the MFU; `--mfu-from OUT/summary.json` takes the MFU, device and
measured peak a GPU check recorded (python -m benchmarks.gpu_check). With an MT-Bench judge it
also counts judge calls and tokens.
    python -m sweep.rq4 --preset paper --dry-run [--json]      (python -m sweep.all: every question)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from core import ids
from core.model import PRESETS as MODEL_PRESETS
from core.settings import DEFAULT_TEMPLATE, TrainSettings
from evals.judge import JudgeConfig
from sweep.planning import lengths
from sweep.planning.source_sizes import PAPER_SIZES, source_figures
from sweep.study.grid import Run
from sweep.study.presets import Preset, decontaminated, gpus_per_run, template_for, train_settings
from trainers.data.builtin_sources import builtin_fingerprint
from trainers.data.recipe import Amount, format_recipe
from trainers.data.selection import count_for

# Tokens per sample: sweep/planning/length_histograms.json (scripts/length_histograms.py), the "paper"
# group for the paper's sources (public stand-ins, SmolLM2's tokenizer: LLaMA's gives roughly
# 10-20% more), the "builtin" group for the synthetic corpora. At max_len 2048 the paper means
# are math 220, code 124, general 1,338, general_nocm 1,255 (an earlier hand-measured table said
# 220/165/1,450/1,450: its code figure came from another Code Alpaca file, its general figure
# counted conversations the trainer rejects).
A100_PEAK_BF16 = 312e12  # FLOP/s, dense bf16
ASSUMED_MFU = 0.40  # model FLOPs utilisation assumed for DeepSpeed ZeRO-3 on 8-16 A100s
MTBENCH_QUESTIONS, MTBENCH_TURNS = 80, 2
JUDGE_REPEATS = JudgeConfig.repeats  # what sweep.execution.evaluation's judge does per answer and turn
# Judge tokens per call (prompt + judgment), an assumption: FastChat's single-answer prompt
# (~300 tokens), the question (~75 a turn) and the model's answer (~250 a turn: GPT-4's answers
# in ../shared/data/mt_bench run ~1,000 characters a turn), the judgment (~150); the turn-2 call
# shows both turns and 30 of the 80 questions add a reference answer: ~1,000 on average.
JUDGE_TOKENS_PER_CALL = 1_000


# Items of each eval's whole test set, for a preset that scores all of them (limit None):
# GSM8K's test split, HumanEval(+)'s problems, MT-Bench's questions.
FULL_EVAL_ITEMS = {"gsm8k": 1319, "humaneval": 164, "humanevalplus": 164,
                   "mtbench": MTBENCH_QUESTIONS}


def eval_items(preset: Preset) -> dict[str, int | None]:
    """Items each of the preset's evals scores per run: its limit, capped by the test set (a
    built-in held-out split: its corpus size); None where neither is known."""
    ev, sizes = preset.evaluation, dict(preset.corpus_sizes)
    data = {"gsm8k": ev.gsm8k, "general_loss": ev.general_heldout}
    out = {}
    for name in ev.names:
        where = data.get(name, "")
        full = (sizes.get(where.removeprefix("builtin:")) if where.startswith("builtin:")
                else FULL_EVAL_ITEMS.get(name))
        limit = ev.limit_of(name)
        out[name] = min(limit, full) if limit and full else (limit or full)
    return out


@dataclass(frozen=True)
class StageCost:
    stage_id: str
    model: str
    recipe_text: str
    samples: int  # selected samples per epoch
    tokens: int  # real training tokens: epochs x sum(selected samples x mean capped length)
    processed_tokens: int  # what the trainer computes on: real plus padding (sweep/planning/lengths.py)
    gpu_hours: float | None  # from processed_tokens


@dataclass(frozen=True)
class Throughput:
    """What a GPU achieves, for gpu_hours: its dense bf16 peak x the MFU a run gets on it."""

    peak_flops: float = A100_PEAK_BF16
    mfu: float = ASSUMED_MFU
    device: str = "A100 (vendor peak)"
    source: str = "assumed"  # "assumed", "--mfu", or the gpu_check summary.json it came from

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def throughput_from(mfu: float | None = None, mfu_from: str | None = None) -> Throughput:
    """The default assumption, an MFU given on the command line (A100 peak), or what a GPU check
    measured (its device, its measured bf16 matmul peak and the MFU against that peak)."""
    if mfu is not None and mfu_from is not None:
        raise ValueError("give --mfu or --mfu-from, not both")
    if mfu is not None:
        if not 0 < mfu <= 1:
            raise ValueError(f"--mfu {mfu}: must be in (0, 1]")
        return Throughput(mfu=mfu, source="--mfu")
    if mfu_from is None:
        return Throughput()
    summary = json.loads(Path(mfu_from).read_text())
    if not summary.get("mfu") or not summary.get("peak_flops_measured"):
        raise ValueError(f"{mfu_from} records no GPU MFU (device {summary.get('device')!r}): "
                         "run python -m benchmarks.gpu_check on a GPU")
    return Throughput(peak_flops=float(summary["peak_flops_measured"]), mfu=float(summary["mfu"]),
                      device=f"{summary['device']} (measured peak)",
                      source=f"{mfu_from} ({summary.get('mfu_source')})")


@dataclass(frozen=True)
class PlannedRun:
    run: Run
    run_id: str
    stage_ids: tuple[str, ...]


@dataclass(frozen=True)
class SweepPlan:
    preset: str
    runs: tuple[PlannedRun, ...]
    stages: dict  # stage id -> StageCost (unique stages after sharing)
    naive_stages: int
    naive_tokens: int
    naive_gpu_hours: float | None
    judge_calls_per_run: int = 0  # MT-Bench judge calls of one evaluated run (0: no judge)
    throughput: Throughput = field(default_factory=Throughput)

    @property
    def shared_tokens(self) -> int:
        return sum(s.tokens for s in self.stages.values())

    @property
    def processed_tokens(self) -> int:
        return sum(s.processed_tokens for s in self.stages.values())

    @property
    def judged_runs(self) -> int:
        return sum(p.run.question != "tsne" for p in self.runs) if self.judge_calls_per_run else 0

    @property
    def judge_calls(self) -> int:
        return self.judged_runs * self.judge_calls_per_run

    @property
    def judge_tokens(self) -> int:
        return self.judge_calls * JUDGE_TOKENS_PER_CALL

    @property
    def gpu_hours(self) -> float | None:
        hours = [s.gpu_hours for s in self.stages.values()]
        return None if not hours or None in hours else sum(hours)


def stage_tokens(recipe, settings: TrainSettings, hists: dict,
                 sizes: dict[str, int]) -> tuple[int, int, int]:
    """(selected samples, real training tokens, processed tokens) of one stage."""
    counts = {source: _count(amount, sizes[source]) for source, amount in recipe}
    real, processed = lengths.epoch_tokens(counts, hists, settings.max_len,
                                           settings.micro_batch, settings.packing)
    return (sum(counts.values()), round(settings.epochs * real),
            round(settings.epochs * processed))


def _count(amount: Amount, n: int) -> int:
    return count_for(amount, n) if isinstance(amount, Fraction) else min(amount, n)


def judge_calls_per_run(preset: Preset) -> int:
    """MT-Bench judge calls per evaluated run: questions x 2 turns x repeats; 0 without a judge
    (then MT-Bench is neither generated nor judged, sweep.study.presets.judged_or_proxy)."""
    ev = preset.evaluation
    if "mtbench" not in ev.names or not (ev.judge_url and ev.judge_model):
        return 0
    limit = ev.limit_of("mtbench")
    questions = MTBENCH_QUESTIONS if limit is None else min(limit, MTBENCH_QUESTIONS)
    return questions * MTBENCH_TURNS * JUDGE_REPEATS


def stage_gpu_hours(model: str, tokens: int, preset: Preset,
                    throughput: Throughput | None = None) -> float | None:
    if not preset.hardware.use_gpu:
        return None
    t = throughput or Throughput()
    params = MODEL_PRESETS[model].params
    return 6 * params * tokens / (t.peak_flops * t.mfu) / 3600


def sources_fingerprint(preset: Preset) -> dict:
    """What identifies each source, as core.ids hashes it: the built-in corpora (where the
    preset has them) by what fixes their bytes (trainers.data.builtin_sources), each explicit
    source in place of the built-in one of its name, by where it is and what it holds
    (resolved at sweep start: sweep/planning/resolution.py); either with the test items they
    leave out (--decontaminate)."""
    builtin = (builtin_fingerprint(dict(preset.corpus_sizes), preset.data_seed,
                                   preset.decontamination_items)
               if preset.builtin_corpora else {})
    explicit = ids.fingerprint_sources(decontaminated({s.name: s for s in preset.sources},
                                                      preset))
    return {**builtin, **explicit}


def resolved_model_content(preset: Preset, model: str) -> str | None:
    """The model's content identity when the sweep resolved it (sweep/planning/resolution.py)."""
    return dict(preset.model_contents).get(model)


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
    return ids.stage_ids(run.model, run.stages, settings, data_seed, sources_fingerprint(preset),
                         resolved_model_content(preset, run.model))


def run_id(run: Run, preset: Preset, stage_ids: Sequence[str] | None = None) -> str:
    """Names the run's result file and Tune trial: its training chain (core.ids.chain_id), where
    it sits in the paper (question, strategy, f, k) and what is measured (the evaluation)."""
    stage_ids = run_stage_ids(run, preset) if stage_ids is None else stage_ids
    ev = preset.evaluation
    template = template_for(preset, run.model)
    digest = ids.content_hash({
        "kind": "sweep-run",
        "train": ids.chain_id(run.model, list(stage_ids),
                              resolved_model_content(preset, run.model)),
        "question": run.question, "strategy": run.strategy,
        "fraction": _text(run.fraction), "k": _text(run.k), "seed": run.seed,
        "evals": evaluation_identity(ev),
        # The template decides a base model's prompts too, which no stage id carries; the
        # default stays out so the runs planned before templates keep their ids.
        **({"template": template} if template != DEFAULT_TEMPLATE else {}),
    })
    return f"{run.question}-{strategy_slug(run.strategy)}-{digest[:10]}"


def evaluation_identity(ev) -> list:
    """What of the evaluation decides a run's numbers (names, item counts, data, judge, caps;
    lm-eval prompts without the chat template only when asked, so existing run ids stay)."""
    return [list(ev.names), ev.limit, [list(p) for p in ev.limits], ev.judge_model, ev.gsm8k,
            ev.general_heldout, ev.max_new_tokens] + (["lm_eval_raw"] if ev.lm_eval_raw else [])


def _text(x: Fraction | None) -> str | None:
    return None if x is None else f"{x.numerator}/{x.denominator}"


def strategy_slug(text: str) -> str:
    """"mixed sequential" -> "mixed_sequential", "DMT" -> "dmt": as run ids spell it."""
    return "".join(c if c.isalnum() else "_" for c in text.lower()).strip("_")


def build_plan(runs: Sequence[Run], preset: Preset,
               throughput: Throughput | None = None) -> SweepPlan:
    throughput = throughput or Throughput()
    figures = source_figures(preset)
    sizes, hists = figures.sizes, figures.histograms
    planned, stages = [], {}
    naive_stages, naive_tokens, naive_hours = 0, 0, 0.0
    seen = set()
    for run in runs:
        ids = run_stage_ids(run, preset)
        rid = run_id(run, preset, ids)
        if rid in seen:  # the same run named by two questions (rq2's singles are rq1's)
            continue
        seen.add(rid)
        settings = train_settings(preset, run.model)  # a seed changes no length or batch
        for sid, stage in zip(ids, run.stages, strict=True):
            samples, tokens, processed = stage_tokens(stage.recipe, settings, hists, sizes)
            hours = stage_gpu_hours(run.model, processed, preset, throughput)
            naive_stages, naive_tokens = naive_stages + 1, naive_tokens + tokens
            naive_hours = None if hours is None or naive_hours is None else naive_hours + hours
            stages.setdefault(sid, StageCost(sid, run.model, format_recipe(stage.recipe),
                                                samples, tokens, processed, hours))
        planned.append(PlannedRun(run, rid, tuple(ids)))
    return SweepPlan(preset.name, tuple(planned), stages, naive_stages, naive_tokens,
                naive_hours if runs else None, judge_calls_per_run(preset), throughput)


def plan_json(plan: SweepPlan, preset: Preset) -> dict:
    """The plan as plain data: figures at the top (`runs` is a count), the runs under
    `run_list`, the distinct stages under `stages`, and what the figures assume."""
    per_run = plan.judge_calls_per_run
    return {
        "preset": plan.preset,
        "runs": len(plan.runs),
        "unique_stages": len(plan.stages),
        "naive_stages": plan.naive_stages,
        "naive_tokens": plan.naive_tokens,
        "shared_tokens": plan.shared_tokens,
        "processed_tokens": plan.processed_tokens,
        "gpu_hours": plan.gpu_hours,
        "naive_gpu_hours": plan.naive_gpu_hours,
        "judge_calls": plan.judge_calls,
        "judge_tokens": plan.judge_tokens,
        "judge": {"runs_judged": plan.judged_runs, "calls_per_run": per_run,
                  "tokens_per_run": per_run * JUDGE_TOKENS_PER_CALL},
        "models": model_figures(plan, preset),
        "run_list": [{"id": p.run_id, "question": p.run.question, "model": p.run.model,
                      "strategy": p.run.strategy, "fraction": _text(p.run.fraction),
                      "k": _text(p.run.k), "seed": p.run.seed, "stage_ids": list(p.stage_ids)}
                     for p in plan.runs],
        "stages": {sid: {"model": s.model, "recipe": s.recipe_text, "samples": s.samples,
                         "tokens": s.tokens, "processed_tokens": s.processed_tokens,
                         "gpu_hours": s.gpu_hours}
                   for sid, s in plan.stages.items()},
        "assumptions": {**assumptions(preset, plan.throughput),
                        "micro_batch": micro_batches(plan, preset)},
    }


def assumptions(preset: Preset, throughput: Throughput | None = None) -> dict:
    settings, throughput = preset.settings, throughput or Throughput()
    figures = source_figures(preset)
    return {"mean_tokens": mean_tokens(preset), "length_histograms": str(
                lengths.HISTOGRAMS.relative_to(lengths.HISTOGRAMS.parents[2])),
            "sources": {"samples": figures.sizes, "how_known": figures.how},
            "paper_sizes": PAPER_SIZES, "max_len": settings.max_len,
            "packing": settings.packing,
            "peak_flops_per_gpu": throughput.peak_flops, "mfu": throughput.mfu,
            "device": throughput.device, "mfu_source": throughput.source,
            "formula": "gpu_hours = 6 x params x processed_tokens / (peak x MFU) / 3600",
            "processed_tokens": "packing off: sum over micro-batches of micro_batch x longest "
                                "row (expected value, rows drawn from the stage's mixture); "
                                "packing on: the real tokens (sweep/planning/lengths.py)",
            "judge": {"questions": MTBENCH_QUESTIONS, "turns": MTBENCH_TURNS,
                      "repeats": JUDGE_REPEATS, "tokens_per_call": JUDGE_TOKENS_PER_CALL}}


def model_figures(plan: SweepPlan, preset: Preset) -> dict[str, dict]:
    """Per model of the plan: what its GPU hours stand on (the committed table in
    core.model, never a download) and the chat template it trains with."""
    models = sorted({p.run.model for p in plan.runs})
    return {m: {"params": MODEL_PRESETS[m].params if m in MODEL_PRESETS else None,
                "gpus_per_run": gpus_per_run(preset, m), "template": template_for(preset, m)}
            for m in models}


def micro_batches(plan: SweepPlan, preset: Preset) -> dict[str, int]:
    """Rows per padded micro-batch per model (33B: 16 GPUs, batch 16, so 1: no padding)."""
    models = sorted({p.run.model for p in plan.runs})
    return {m: train_settings(preset, m).micro_batch for m in models}


def mean_tokens(preset: Preset) -> dict[str, float]:
    """Mean real tokens per sample per source at the preset's max_len (the histograms')."""
    hists = source_figures(preset).histograms
    return {name: round(lengths.mean_length(h, preset.settings.max_len), 1)
            for name, h in hists.items() if h}


def format_plan(plan: SweepPlan, preset: Preset) -> str:
    lines = [f"plan for preset {plan.preset}: {len(plan.runs)} runs"]
    for p in plan.runs:
        chain = " -> ".join(f"[{format_recipe(s.recipe)}]" for s in p.run.stages) or "(base)"
        lines.append(f"  {p.run_id}  {p.run.label}: {chain}")
        lines.append(f"      stages {' -> '.join(p.stage_ids) or '-'}")
    lines.append(f"unique stages after sharing: {len(plan.stages)}")
    for s in plan.stages.values():
        hours = f", {s.gpu_hours:,.1f} GPU h" if s.gpu_hours is not None else ""
        lines.append(f"  {s.stage_id}  {s.model} [{s.recipe_text}] {s.samples:,} samples, "
                     f"{s.tokens:,} tokens ({s.processed_tokens:,} processed){hours}")
    return "\n".join(lines + summary_lines(plan, preset))


def summary_lines(plan: SweepPlan, preset: Preset) -> list[str]:
    """The plan's figures, as the JSON's top-level keys name them."""
    lines = [f"runs: {len(plan.runs)}",
             f"stages: naive_stages {plan.naive_stages}, unique_stages {len(plan.stages)}",
             (f"training tokens: naive_tokens {plan.naive_tokens:,}, shared_tokens "
              f"{plan.shared_tokens:,}, processed_tokens {plan.processed_tokens:,} (packing "
              f"{'on' if preset.settings.packing else 'off'}; rows per micro-batch and "
              f"worker {micro_batches(plan, preset)})")]
    if plan.gpu_hours is not None:
        figures = model_figures(plan, preset)
        walls = {m: f["gpus_per_run"] for m, f in figures.items()}
        params = {m: f"{f['params'] / 1e9:.2f}B" for m, f in figures.items() if f["params"]}
        t = plan.throughput
        lines.append(
            f"gpu_hours {plan.gpu_hours:,.0f} (naive {plan.naive_gpu_hours:,.0f}) = 6 x params x "
            f"processed_tokens / ({t.device} bf16 peak {t.peak_flops / 1e12:.0f} TFLOP/s x MFU "
            f"{t.mfu:.1%}, {t.source}); GPUs per run {walls}; params {params}")
    elif preset.hardware.accelerator:
        lines.append(f"gpu_hours: none (simulated: each run asks for {preset.hardware.workers} "
                     f"{preset.hardware.accelerator}, one per Train worker, and computes on CPU)")
    else:
        lines.append("gpu_hours: none (CPU preset)")
    per_run = plan.judge_calls_per_run
    lines.append(f"judge: judge_calls {plan.judge_calls:,}, judge_tokens {plan.judge_tokens:,} "
                 f"({plan.judged_runs} runs judged x {per_run} calls = questions x "
                 f"{MTBENCH_TURNS} turns x {JUDGE_REPEATS} repeats; {JUDGE_TOKENS_PER_CALL:,}"
                 f" tokens a call assumed)" if per_run else
                 "judge: judge_calls 0, judge_tokens 0 (no MT-Bench judge in this preset)")
    lines.append(f"mean tokens per sample (sweep/planning/length_histograms.json, capped at max_len "
                 f"{preset.settings.max_len}): {mean_tokens(preset)}")
    figures = source_figures(preset)
    scanned = [n for n, h in figures.how.items() if h == "scanned"]
    if scanned:
        lines.append(f"sources {scanned}: samples counted by the trainer's reader, lengths "
                     "estimated from characters (sweep/planning/source_scan.py)")
    for name, why in figures.unknown().items():
        lines.append(f"source {name}: samples {why}; its stages count 0 tokens here")
    templates = {m: template_for(preset, m) for m in sorted({p.run.model for p in plan.runs})}
    lines.append(f"chat templates {templates}; the lengths above are SmolLM2's tokenizer on "
                 "the Vicuna template: other tokenizers and templates give other counts")
    return lines
