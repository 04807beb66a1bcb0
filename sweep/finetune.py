"""Fine-tune one strategy, stage by stage, on a local Ray (or the cluster at --address); stages
already in the run storage are reused, missing ones trained once. Prints each stage's id, where
its checkpoint is, and whether it was trained or reused. A preset (smoke, local, paper...) gives
the model, settings, corpus sizes and data seed; the other flags override them. A stage planned
here has the id the sweep gives it (`python -m sweep.rq4 --preset smoke` trains the same one).
A few minutes on 2 CPUs; --dry-run prints the stage ids and trains nothing:
    python -m sweep.finetune --preset smoke --strategy dmt --k 1/256 [--dry-run]
    python -m sweep.finetune --model smollm2_135m --strategy mixed_sequential --scale 1/64
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from core.contracts import StageEvent
from core.settings import TEMPLATES, TrainSettings
from sweep.cli import add_content_flags, with_content_flags
from sweep.planning.plan import resolved_model_content, seeded, sources_fingerprint
from sweep.study import choices
from sweep.study import strategies as st
from sweep.study.grid import Run
from sweep.study.presets import PRESETS, Preset, get_preset, source_specs, workers_for
from trainers.data.recipe import Amount, format_recipe, make_recipe, parse_amount, parse_recipe
from trainers.data.source_spec import NOCM, parse_named

STRATEGIES = ("single", "mix", "multi_task", "sequential", "mixed_sequential", "dmt")
DEFAULT_MIX = ("math", "code", "general")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sweep.finetune", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="local", choices=sorted(PRESETS),
                   help="model, settings, corpus sizes and data seed (default local)")
    p.add_argument("--model", default=None, help="preset (tiny_llama, smollm2_135m, llama_7b...), "
                   "HF id or local path (default: the preset's first model)")
    p.add_argument("--template", choices=TEMPLATES, default=None,
                   help="chat template: the paper's vicuna, or the tokenizer's own (model) "
                        "(default: the model preset's, else vicuna)")
    p.add_argument("--strategy", choices=STRATEGIES, default="mixed_sequential")
    p.add_argument("--k", default=None, help="dmt: amount of each specialized source in stage 2 "
                   "('1/256' a fraction, '#30' a count)")
    p.add_argument("--sources", default=None, help="single/mix/multi_task: comma-separated "
                   "source names (default math,code,general); sequential: the order")
    p.add_argument("--amount", default=None, help="single/mix: '1/64' for every source named "
                   "by --sources, or a recipe 'math=1/64,code=#300' (default 1: all)")
    p.add_argument("--source", action="append", default=[], metavar="NAME=WHERE", type=parse_named,
                   help="a training source (local file, s3:// / gs:// URI, HF dataset id, or "
                   "builtin:NAME); repeat per source. Naming only math/code/general gives those "
                   "new places; other names make the named sources the only ones (as the sweep)")
    p.add_argument("--corpora", default=None, help="storage (folder or URI) the built-in "
                   "corpora are written into (default: the run storage, as the sweep does)")
    p.add_argument("--scale", default="1", help="multiply every amount by this fraction for a "
                   "quick run: '--scale 1/64' trains on 1/64 of what the strategy names (counts "
                   "are scaled too, rounded down, at least 1). Changes the stage ids")
    p.add_argument("--storage", default="./runs", help="run storage: folder or s3:// / gs:// URI")
    p.add_argument("--workers", type=int, default=None,
                   help="Ray Train workers per stage (default: the preset's)")
    p.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=None,
                   help="one GPU per worker (default: the preset's)")
    p.add_argument("--cpus-per-worker", type=float, default=None,
                   help="CPUs each worker reserves (default: fit's choice)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    p.add_argument("--seed", type=int, default=0, help="replicate seed: offsets the preset's "
                   "data seed (selection, order) and training seed, as the sweep's --seeds do")
    p.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    p.add_argument("--micro-batch", type=int, default=None, help="samples per forward pass")
    p.add_argument("--global-batch", type=int, default=None, help="samples per step")
    p.add_argument("--max-len", type=int, default=None, help="tokens per sample")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None)
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="mid-stage checkpoint every N steps (a crashed stage resumes there)")
    p.add_argument("--progress-bars", action="store_true", help="show Ray Data's progress bars")
    p.add_argument("--max-failures", type=int, default=1, help="worker-group restarts per stage")
    p.add_argument("--dry-run", action="store_true", help="print the stage ids; train nothing")
    add_content_flags(p)
    return p


def scale_amount(amount: Amount, scale: Fraction) -> Amount:
    if isinstance(amount, int):
        return max(1, int(amount * scale)) if amount else 0
    return amount * scale


def scale_stages(stages: Sequence[st.Stage], scale: Fraction) -> tuple[st.Stage, ...]:
    if scale == 1:
        return tuple(stages)
    return tuple(replace(s, recipe=make_recipe((src, scale_amount(a, scale))
                                               for src, a in s.recipe))
                 for s in stages)


def build_stages(args: argparse.Namespace) -> tuple[st.Stage, ...]:
    names = tuple(n.strip() for n in args.sources.split(",")) if args.sources else None
    if args.strategy == "dmt":
        if args.k is None:
            raise SystemExit("--strategy dmt needs --k (e.g. --k 1/256)")
        return st.dmt(parse_amount(args.k))
    if args.k is not None:
        raise SystemExit(f"--k is for dmt, not {args.strategy}")
    if args.strategy == "mixed_sequential":
        return st.mixed_sequential()
    if args.strategy == "sequential":
        return st.sequential(names or ("code", "math", "general"))
    if args.strategy == "multi_task":
        return st.multi_task(names or DEFAULT_MIX)
    recipe = amounts(args.amount, names or (DEFAULT_MIX if args.strategy == "mix" else ()))
    if args.strategy == "single":
        if len(recipe) != 1:
            raise SystemExit("--strategy single needs one source: --sources math [--amount 1/4]")
        return st.single(*recipe[0])
    return st.mix(dict(recipe))


def amounts(text: str | None, names: Sequence[str]):
    if text and "=" in text:
        return parse_recipe(text)
    if not names:
        raise SystemExit("name the source(s) with --sources")
    amount = parse_amount(text) if text else Fraction(1)
    return make_recipe((n, amount) for n in names)


def build_settings(args: argparse.Namespace, base: TrainSettings) -> TrainSettings:
    """The preset's settings with the flags given on top."""
    chosen = {"epochs": args.epochs, "micro_batch": args.micro_batch, "max_len": args.max_len,
              "global_batch": args.global_batch, "lr": args.lr, "precision": args.precision,
              "checkpoint_every_steps": args.checkpoint_every}
    return replace(base, **{k: v for k, v in chosen.items() if v is not None})


def with_sources(args: argparse.Namespace, preset: Preset, needed: set[str]) -> Preset:
    """The preset after --source, by the sweep's rule (sweep/study/choices.py): naming only
    math, code or general gives those new places; other names make the named sources the
    only ones. Every source the strategy reads must then be there."""
    try:
        preset = choices.with_sources(preset, dict(args.source))
    except choices.ChoiceError as err:
        raise SystemExit(str(err)) from None
    have = set(choices.sources_of(preset)) | {s.name for s in preset.sources}
    missing = sorted(needed - have - ({NOCM} if preset.source_names is None else set()))
    if missing:
        raise SystemExit(f"the strategy reads {missing}: add --source NAME=WHERE for each "
                         f"(this run's sources: {sorted(have)})")
    return preset


@dataclass(frozen=True)
class Job:
    """One strategy of one model, resolved as the sweep resolves a run of its grid."""
    preset: Preset
    run: Run
    settings: TrainSettings
    data_seed: int
    workers: int
    sources_fp: dict
    model_content: str | None = None  # the base model's content identity (sweep/planning/resolution.py)

    @property
    def stages(self) -> tuple[st.Stage, ...]:
        return st.with_settings(self.run.stages, self.settings)


def build_job(args: argparse.Namespace) -> Job:
    """The preset with the flags on top, and the run's settings, data seed and source
    fingerprint through the sweep's own functions (sweep.planning.plan.seeded, sources_fingerprint)."""
    preset = get_preset(args.preset)
    model = args.model or preset.models[0]
    stages = scale_stages(build_stages(args), Fraction(args.scale))
    needed = {s for stage in stages for s, _ in stage.recipe}
    hardware = preset.hardware if args.gpu is None else replace(preset.hardware, use_gpu=args.gpu)
    preset = replace(with_sources(args, preset, needed), models=(model,),
                     settings=build_settings(args, preset.settings), hardware=hardware,
                     template=args.template or preset.template)
    # Contents resolved as the sweep resolves them, so the ids match (a dry run writes nothing).
    preset = with_content_flags(preset, args, None if args.dry_run else _storage(args.storage))
    run = Run("finetune", model, args.strategy, stages, stages[-1].recipe, seed=args.seed)
    workers = args.workers or workers_for(preset, model)
    settings, data_seed = seeded(run, preset, workers)
    return Job(preset, run, settings, data_seed, workers, sources_fingerprint(preset),
               resolved_model_content(preset, model))


def _storage(uri: str):
    from core.storage import Storage  # lazy: light command (dry run: no pyarrow)

    return Storage(uri)


def plan(job: Job) -> list:
    """The stage ids, as run_stages will name the stages (trainers.stages.plan_stages)."""
    from trainers.stages import plan_stages  # lazy: light command (dry run: no pyarrow)

    return plan_stages(job.run.model, job.stages, job.sources_fp, settings=job.settings,
                       seed=job.data_seed, sources_fp=job.sources_fp,
                       model_content=job.model_content)


def print_event(event: StageEvent) -> None:
    extra = ""
    if event.status == "trained":
        extra = f"  ({event.wall_s:.0f} s)"
    elif event.status == "waiting":
        holder = event.holder or {}
        extra = f"  (held by {holder.get('host')} pid {holder.get('pid')})"
    print(f"[stage {event.index + 1}/{event.of}] {event.status:8s} {event.stage_id}  "
          f"{event.recipe}{extra}", flush=True)


def connect_ray(address: str | None) -> None:
    import ray  # lazy: light command (dry run: no ray)

    if ray.is_initialized():
        return  # a caller (a test, a notebook) already chose the cluster
    if address:
        ray.init(address=address)
    else:
        ray.init(include_dashboard=False)


def main(argv: Sequence[str] | None = None):
    """Run the command; returns the StageResults, or with --dry-run the PlannedStages (tests
    call this in-process)."""
    args = build_parser().parse_args(argv)
    job = build_job(args)
    model, planned = job.run.model, plan(job)
    print(f"{args.strategy}: {len(planned)} stage(s) of {model} ({job.preset.name} preset) in "
          f"{args.storage}: " + " -> ".join(format_recipe(p.recipe) for p in planned), flush=True)
    if args.dry_run:
        for p in planned:
            print(f"stage {p.index + 1}: {p.stage_id}  {format_recipe(p.recipe)}")
        return planned
    return train(args, job)


def train(args: argparse.Namespace, job: Job) -> list:
    from core.storage import Storage  # lazy: light command (dry run: no pyarrow)
    from trainers.stages import (  # lazy: light command (dry run: no pyarrow)
        missing_stages,
        run_stages,
    )

    storage = Storage(args.storage)
    specs = source_specs(job.preset, Storage(args.corpora) if args.corpora else storage)
    options = {"settings": job.settings, "seed": job.data_seed, "sources_fp": job.sources_fp,
               "model_content": job.model_content}
    if missing_stages(job.run.model, job.stages, specs, storage, **options):
        connect_ray(args.address)  # only training needs Ray: a full re-run skips its start-up
        if not args.progress_bars:
            import ray.data  # lazy: light command (dry run: no ray)

            # Per-worker dataset bars drown the stage lines that are this command's output.
            ray.data.DataContext.get_current().enable_progress_bars = False
    resources = {"CPU": args.cpus_per_worker} if args.cpus_per_worker is not None else None
    start = time.time()
    results = run_stages(job.run.model, job.stages, specs, storage, workers=job.workers,
                         use_gpu=job.preset.hardware.use_gpu, max_failures=args.max_failures,
                         on_event=print_event, resources_per_worker=resources, **options)
    for i, r in enumerate(results, 1):
        print(f"stage {i}: {r.stage_id}  {'trained' if r.trained else 'reused '}  {r.path}")
    trained = sum(r.trained for r in results)
    print(f"done in {time.time() - start:.0f} s: {trained} trained, "
          f"{len(results) - trained} reused", flush=True)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
