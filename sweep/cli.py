"""The command line every question shares: parse, build the grid, then plan or sweep and report.

    python -m sweep.rq2 [--preset smoke|local|paper] [--models ...] [--template vicuna|model]
        [--fractions ...] [--source NAME=WHERE ...] [--mix a,b | --specialized a,b --general c
        --order c,a,b] [--evals gsm8k,lm-eval:TASK,...] [--limit N] [--lm-eval-include DIR]
        [--seeds N [--vary-seed both|data|train]] [--storage PATH_OR_URI] [--address auto]
        [--max-concurrent N] [--dry-run [--json]] [--verbose] [--mlflow URI]
        [--decontaminate [gsm8k,humaneval,...]] [--require-resolved]
        [--judge-url URL --judge-model M] [--judge-key-env NAME] [--unsafe-sandbox]
    python -m sweep.all [same flags] [--ks ...] [--tsne]     (every question, one sweep)

The judge's key is read from the driver's environment (OPENAI_API_KEY, or --judge-key-env) and
stays in this process: trials only generate MT-Bench answers, the driver judges them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

from core.settings import TEMPLATES
from sweep.planning.plan import build_plan, format_plan, plan_json, strategy_slug, throughput_from
from sweep.planning.resolution import resolve_preset, with_decontamination
from sweep.study import choices, grid, presets, simulate
from sweep.study.presets import Preset
from trainers.data.recipe import parse_amount
from trainers.data.source_spec import parse_named


def parse_fractions(text: str) -> tuple[Fraction, ...]:
    """'1,1/4,1/16' -> exact fractions; counts ('#300') are not grid fractions."""
    out = []
    for part in text.split(","):
        amount = parse_amount(part)
        if not isinstance(amount, Fraction) or amount == 0:
            raise argparse.ArgumentTypeError(f"{part!r}: a fraction in (0, 1] like 1/16")
        out.append(amount)
    return tuple(out)


def parse_fraction(text: str) -> Fraction:
    (value,) = parse_fractions(text)
    return value


def parse_names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return names


def build_parser(question: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m sweep.{question}",
                                description=f"Sweep {'every question' if question == 'all' else question}"
                                            " of Dong et al. (GRID.md).")
    p.add_argument("--preset", default="local", choices=sorted(presets.PRESETS))
    p.add_argument("--models", nargs="+", help="model presets, HF ids or paths (default: preset)")
    p.add_argument("--template", choices=TEMPLATES,
                   help="chat template of every model: the paper's vicuna, or the tokenizer's "
                        "own (model) (default: each model preset's, else vicuna)")
    p.add_argument("--fractions", type=parse_fractions,
                   help="comma-separated fractions (default: the preset's; paper "
                        "1,1/4,1/16,1/64,1/256)")
    p.add_argument("--seeds", type=int, default=1,
                   help="repeat every trained run with seeds 0..N-1 (default 1)")
    p.add_argument("--vary-seed", choices=("both", "data", "train"), default=None,
                   help="what a seed changes: the data seed (subset and order), the training "
                        "seed, or both (default)")
    if question in ("rq4", "all"):
        p.add_argument("--ks", type=parse_fractions,
                       help="DMT's k values (default: the preset's; paper 1,1/4,1/16,1/64,1/256;"
                            " 1/2,1/8,1/32 too)")
    if question in ("rq3", "rq4", "all"):
        p.add_argument("--amount", type=parse_fraction,
                       help="what all of a source means: 1 (the paper's), or e.g. 1/4 of every "
                            "source, where rq4's strategies train (DMT's k then being k of it) "
                            "and rq3 holds its fixed parts ('fixed 1/4 general') (default: the "
                            "preset's; local 1/4)")
    if question == "all":
        p.add_argument("--tsne", action="store_true",
                       help="also the t-SNE representations (base model and DMT k=1/256)")
    p.add_argument("--storage", help="local folder or s3:// / gs:// URI (default: preset)")
    add_source_flags(p)
    add_group_flags(p, question)
    add_eval_flags(p)
    add_content_flags(p)
    add_proxy_flags(p)
    p.add_argument("--address", help="Ray cluster address ('auto' inside a cluster)")
    p.add_argument("--cluster-config", help="the cluster's launcher config (default on a `ray up` "
                   "head: ~/ray_bootstrap_config.yaml): runs at once follow what it can grow to")
    p.add_argument("--max-concurrent", type=int, help="runs at once (default: fit the cluster)")
    p.add_argument("--strategies", type=parse_names,
                   help="only these strategies, comma-separated as in run ids (math_only, "
                        "multi_task, sequential, mixed_sequential, dmt, mix...); the base run "
                        "stays")
    p.add_argument("--workers", type=int,
                   help="Train workers per run on a CPU preset (default: the preset's)")
    p.add_argument("--simulate-gpus", nargs="?", const=simulate.DEFAULT_LIKE, metavar="MODEL",
                   help="ask for simulated GPUs (resource sim_gpu) the way paper model MODEL "
                        f"asks for GPUs, scaled down {simulate.SIM_GPU_SCALE}x (default "
                        f"{simulate.DEFAULT_LIKE}: 2 per run), computing on CPU: "
                        "sweep/study/simulate.py, cluster_sim.yaml")
    p.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                   help="a mid-stage checkpoint every STEPS optimizer steps (default: the "
                        "preset's; not part of stage ids)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; train nothing")
    p.add_argument("--json", action="store_true", help="with --dry-run: the plan as JSON")
    p.add_argument("--mfu", type=float, help="with --dry-run: the MFU for gpu_hours (A100 peak; "
                   "default: the assumed 0.40)")
    p.add_argument("--mfu-from", help="with --dry-run: a benchmarks.gpu_check summary.json: its "
                   "measured MFU, peak and device for gpu_hours")
    p.add_argument("--no-report", action="store_true", help="skip writing the report")
    p.add_argument("--ray-temp-dir", help="local Ray only: its temp folder (default Ray's)")
    p.add_argument("--verbose", action="store_true",
                   help="Ray's worker logs and Tune's status table instead of the sweep's own "
                        "progress table")
    p.add_argument("--mlflow", metavar="URI",
                   help="also log every run to MLflow at URI (a server, or file://DIR/mlruns)")
    p.add_argument("--judge-url", default=os.environ.get("DMT_JUDGE_URL"),
                   help="MT-Bench judge: OpenAI-compatible base URL (default $DMT_JUDGE_URL)")
    p.add_argument("--judge-model", default=os.environ.get("DMT_JUDGE_MODEL"),
                   help="the judge's model (default $DMT_JUDGE_MODEL)")
    p.add_argument("--judge-key-env", default=None, metavar="NAME",
                   help="environment variable holding the judge's key (default "
                        "OPENAI_API_KEY); read by this process only, never passed on")
    p.add_argument("--unsafe-sandbox", action="store_true",
                   help="run HumanEval's model code even without bubblewrap or namespaces "
                        "(refused otherwise; recorded in the results' isolation column)")
    return p


def add_source_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", type=parse_named, action="append", default=[],
                   metavar="NAME=WHERE",
                   help="a training source: a local file (JSON/JSONL/Parquet: messages, "
                        "ShareGPT, Alpaca, GSM8K or RFT rows), an s3:// / gs:// URI, an HF "
                        "dataset id, or builtin:NAME (smoke/local: math, code, general, and the "
                        "opt-in tools). Naming only math/code/general moves those; any other "
                        "name makes the named sources the question's sources (repeatable)")


def add_group_flags(p: argparse.ArgumentParser, question: str) -> None:
    """How the question composes the sources (defaults: the paper's grouping)."""
    if question in ("rq2", "all"):
        p.add_argument("--mix", type=parse_names, help="rq2: the sources mixed (default all)")
    if question in ("rq3", "rq4", "all"):
        p.add_argument("--specialized", type=parse_names,
                       help="the specialized sources (default math,code)")
        p.add_argument("--general", help="the general source (default general)")
    if question in ("rq4", "all"):
        p.add_argument("--order", type=parse_names,
                       help="sequential training's order (default code,math,general)")


def add_eval_flags(p: argparse.ArgumentParser) -> None:
    """The abilities measured: built-in evals and any lm-evaluation-harness task."""
    p.add_argument("--evals", type=parse_names,
                   help="comma-separated: gsm8k, humaneval, humanevalplus, mtbench, "
                        "general_loss, or lm-eval:TASK (any lm-evaluation-harness task; "
                        "evals/tasks/ ships dmt_tool_calls) (default: the preset's)")
    p.add_argument("--limit", help="items per eval: N, or EVAL=N,... (default: the preset's)")
    p.add_argument("--lm-eval-include", metavar="DIR",
                   help="a folder of lm-eval task YAMLs (your own tasks)")
    p.add_argument("--lm-eval-raw", action="store_true",
                   help="score lm-eval tasks without the run's chat template, as plain "
                        "lm-eval does (default: with it, as the run was trained)")


def add_proxy_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--proxy", metavar="lora|model=NAME",
                   help="train every run by a cheap proxy instead: LoRA adapters on the same "
                        "model, or a smaller model; the results say so (proxy column), and "
                        "sweep.report --agreement checks it against full runs")
    p.add_argument("--lora-rank", type=int, help=f"--proxy lora: rank (default "
                                                 f"{presets.LORA_RANK})")
    p.add_argument("--lora-alpha", type=int, help=f"--proxy lora: alpha (default "
                                                  f"{presets.LORA_ALPHA})")
    p.add_argument("--lora-lr", type=float, help="--proxy lora: the adapters' learning rate "
                                                 "(default: 10x the preset's, at most 1e-3)")


def add_content_flags(p: argparse.ArgumentParser) -> None:
    """--decontaminate and --require-resolved: every sweep command and sweep.finetune."""
    p.add_argument("--decontaminate", nargs="?", const="", default=None, metavar="TESTS",
                   help="leave out training samples sharing a 13-gram with a test item, "
                        "counted as contaminated:<test>: the preset's evals among gsm8k, "
                        "humaneval, mtbench, or those named (gsm8k,humaneval or NAME=PATH)")
    p.add_argument("--require-resolved", action="store_true",
                   help="refuse to plan or run when a source's or model's content cannot be "
                        "identified (offline and not in the hub cache, a missing file)")


def with_content_flags(preset: Preset, args: argparse.Namespace, storage=None) -> Preset:
    """The preset with --decontaminate applied and every content identity resolved once
    (sweep/planning/resolution.py); a dry run resolves offline and writes nothing."""
    try:
        if args.decontaminate is not None:
            preset = with_decontamination(preset, args.decontaminate)
        return resolve_preset(preset, storage=storage, offline=args.dry_run,
                              require=args.require_resolved)
    except ValueError as err:
        raise SystemExit(str(err)) from None


def preset_from_args(args: argparse.Namespace) -> Preset:
    preset = presets.get_preset(args.preset)
    if args.models:
        preset = replace(preset, models=tuple(args.models))
    if args.template:
        preset = replace(preset, template=args.template)
    if args.storage:
        preset = replace(preset, storage=args.storage)
    elif args.proxy not in (None, "full"):  # a proxy's runs keep out of the full runs' tables
        slug = "".join(c if c.isalnum() else "_" for c in args.proxy)
        preset = replace(preset, storage=f"{str(preset.storage).rstrip('/')}-{slug}")
    if args.max_concurrent is not None:
        if args.max_concurrent < 1:
            raise SystemExit("--max-concurrent must be >= 1")
        preset = replace(preset, max_concurrent=args.max_concurrent)
    preset = choices_from_args(preset, args)
    try:
        preset = presets.with_proxy(preset, args.proxy, rank=args.lora_rank,
                                    alpha=args.lora_alpha, lr=args.lora_lr)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    preset = hardware_from_args(preset, args)
    if args.vary_seed:
        preset = replace(preset, seed_varies=args.vary_seed)
    try:
        preset = presets.with_judge(preset, args.judge_url, args.judge_model)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if args.unsafe_sandbox:
        preset = replace(preset, evaluation=replace(preset.evaluation, unsafe_sandbox=True))
    return preset


def hardware_from_args(preset: Preset, args: argparse.Namespace) -> Preset:
    """--workers, --simulate-gpus and --checkpoint-every applied to the preset."""
    if args.workers is not None:
        if preset.hardware.use_gpu:
            raise SystemExit("--workers is for CPU presets: a GPU run has one worker per GPU")
        if args.workers < 1:
            raise SystemExit("--workers must be >= 1")
        preset = replace(preset, hardware=replace(preset.hardware, workers=args.workers))
    if args.simulate_gpus:
        try:
            preset = simulate.simulate_gpus(preset, args.simulate_gpus)
        except ValueError as e:
            raise SystemExit(str(e)) from None
    if args.checkpoint_every is not None:
        if args.checkpoint_every < 0:
            raise SystemExit("--checkpoint-every must be >= 0 (0: none)")
        preset = replace(preset, settings=replace(
            preset.settings, checkpoint_every_steps=args.checkpoint_every))
    return preset


def choices_from_args(preset: Preset, args: argparse.Namespace) -> Preset:
    """--source, --evals, --limit and --lm-eval-* applied (sweep/study/choices.py)."""
    try:
        preset = choices.with_sources(preset, dict(args.source))
        limit = None if args.limit is None else choices.parse_limit(args.limit)
        preset = choices.with_evals(preset, args.evals, limit, args.lm_eval_include,
                                    args.lm_eval_raw)
    except choices.ChoiceError as err:
        raise SystemExit(str(err)) from None
    if args.evals or args.lm_eval_include:  # the presets' own evals need no check
        check_evals(preset, warn_only=args.dry_run)
    return preset


def check_evals(preset: Preset, warn_only: bool = False) -> None:
    """Every eval known and every lm-eval task loadable, before anything trains (a dry run
    only warns about a task it cannot load here: the cluster may have its data)."""
    from evals.lm_eval_task import TaskError, resolve_task, task_name  # lazy: light command
    from evals.registry import EVALS  # lazy: light command (dry run: no torch unless asked)

    ev = preset.evaluation
    unknown = [n for n in ev.names if n not in EVALS and task_name(n) is None]
    if unknown:
        raise SystemExit(f"--evals: unknown {unknown}; known: {', '.join(EVALS)}, or "
                         "lm-eval:TASK")
    if ev.lm_eval_include and not Path(ev.lm_eval_include).is_dir():
        raise SystemExit(f"--lm-eval-include {ev.lm_eval_include}: not a folder")
    for name in ev.names:
        task = task_name(name)
        if task is None:
            continue
        try:
            resolve_task(task, ev.lm_eval_include)
        except TaskError as err:
            if not warn_only:
                raise SystemExit(str(err)) from None
            print(f"warning: {err}", file=sys.stderr)


def spent_so_far(plan, preset, asked: bool) -> dict | None:
    """Planned vs used GPU hours per question when the storage holds finished runs (a dry run
    after a partial sweep); None before any run finished or when the storage is unreachable.
    A remote storage is only looked at when `--storage` names it (`asked`): a dry run must
    answer offline at once."""
    from core.storage import Storage  # lazy: light command (dry run: no pyarrow)
    from sweep.reporting.budget import budget  # lazy: light command (dry run: no pyarrow)

    if not asked and "://" in str(preset.storage):
        return None
    try:
        storage = Storage(preset.storage)
        if not storage.list("results"):
            return None
        return budget(plan, storage)
    except OSError:  # e.g. no credentials for the preset's s3:// bucket: plan without it
        return None


def main(question: str, argv: Sequence[str] | None = None) -> int:
    args = build_parser(question).parse_args(argv)
    if args.json and not args.dry_run:
        raise SystemExit("--json goes with --dry-run")
    preset = preset_from_args(args)
    if args.seeds < 1:
        raise SystemExit("--seeds must be >= 1")
    runs = build_runs(question, args, preset)
    preset = with_content_flags(preset, args, None if args.dry_run else _storage(preset))
    if args.dry_run:
        try:
            throughput = throughput_from(args.mfu, args.mfu_from)
        except ValueError as err:
            raise SystemExit(str(err)) from None
        plan = build_plan(runs, preset, throughput)
        spent = spent_so_far(plan, preset, asked=args.storage is not None)
        if args.json:
            print(json.dumps({**plan_json(plan, preset), **({"budget": spent} if spent else {})},
                             indent=1))
        else:
            from sweep.reporting.budget import (
                format_budget,  # lazy: light command (dry run: no pyarrow)
            )

            print("\n".join([format_plan(plan, preset), *(format_budget(spent) if spent else [])]))
        return 0
    from sweep.execution.driver import run_sweep  # lazy: light command (dry run: no ray)
    from sweep.execution.judging import driver_judge  # lazy: light command (dry run: no ray)

    judge = driver_judge(preset.evaluation, args.judge_key_env)
    summary = run_sweep(runs, preset, address=args.address, ray_temp_dir=args.ray_temp_dir,
                        cluster_config=args.cluster_config,
                        grow_report=not args.no_report, verbose=args.verbose,
                        mlflow_uri=args.mlflow, judge=judge)
    print(summary.text())
    if not args.no_report:
        from sweep.reporting.document import (
            write_report,  # lazy: light command (dry run: no pyarrow)
        )

        out = write_report(preset.storage)
        print(f"report: {out}")
    return 0 if summary.ok else 1


def _storage(preset: Preset):
    from core.storage import Storage  # lazy: light command (dry run: no pyarrow)

    return Storage(preset.storage)


def build_runs(question: str, args: argparse.Namespace, preset: Preset) -> list:
    """The grid of one question, or of every question for `all` (sweep/all.py): --fractions,
    else the question's own fractions in the preset, else the preset's, else the paper's."""
    def fractions_of(q: str):
        own = dict(preset.question_fractions).get(q)
        return args.fractions or own or preset.fractions or grid.FRACTIONS

    ks = getattr(args, "ks", None) or preset.ks or grid.KS
    amount = getattr(args, "amount", None) or preset.amount
    try:
        spec = choices.grid_spec(replace(preset, amount=amount), question,
                                 mix=getattr(args, "mix", None),
                                 specialized=getattr(args, "specialized", None),
                                 general=getattr(args, "general", None),
                                 order=getattr(args, "order", None))
    except choices.ChoiceError as err:
        raise SystemExit(str(err)) from None
    if question == "all":
        # The ablation and t-SNE study the paper's own sources (choices.PAPER_ONLY).
        questions = grid.ALL_QUESTIONS if preset.source_names is None else tuple(
            q for q in grid.ALL_QUESTIONS if q not in choices.PAPER_ONLY)
        if args.tsne and preset.source_names is not None:
            raise SystemExit("--tsne maps the paper's math, code and general: not with "
                             "sources of your own")
        runs = grid.build_all(preset.models, ks=ks, seeds=args.seeds, tsne=args.tsne,
                              spec=spec, fractions_of=fractions_of, questions=questions)
    else:
        runs = grid.build_grid(question, preset.models, fractions_of(question), ks,
                               seeds=args.seeds, spec=spec)
    return only_strategies(runs, args.strategies) if args.strategies else runs


def only_strategies(runs: list, names: Sequence[str]) -> list:
    """The base runs and the runs of the named strategies (as run ids spell them)."""
    known = {strategy_slug(r.strategy) for r in runs if r.stages}
    unknown = sorted(set(names) - known)
    if unknown:
        raise SystemExit(f"--strategies: {unknown} not in this grid; it has {sorted(known)}")
    return [r for r in runs if not r.stages or strategy_slug(r.strategy) in names]


def entry(question: str) -> None:
    sys.exit(main(question))
