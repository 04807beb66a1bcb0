"""Fine-tune one strategy, stage by stage, on a local Ray (or the cluster at --address); stages
already in the run storage are reused, missing ones trained once. Prints each stage's id, where
its checkpoint is, and whether it was trained or reused. A few minutes on 2 CPUs:
    python -m trainers.finetune --model smollm2_135m --strategy mixed_sequential \\
        --scale 1/64 --epochs 1 --max-len 256
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

from sweep import strategies as st
from trainers.recipe import Amount, format_recipe, make_recipe, parse_amount, parse_recipe
from trainers.settings import TrainSettings

STRATEGIES = ("single", "mix", "multi_task", "sequential", "mixed_sequential", "dmt")
DEFAULT_MIX = ("math", "code", "general")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trainers.finetune", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2_135m",
                   help="preset (tiny_llama, smollm2_135m, llama_7b...), HF id or local path")
    p.add_argument("--strategy", choices=STRATEGIES, default="mixed_sequential")
    p.add_argument("--k", default=None, help="dmt: amount of each specialized source in stage 2 "
                   "('1/256' a fraction, '#30' a count)")
    p.add_argument("--sources", default=None, help="single/mix/multi_task: comma-separated "
                   "source names (default math,code,general); sequential: the order")
    p.add_argument("--amount", default=None, help="single/mix: '1/64' for every source named "
                   "by --sources, or a recipe 'math=1/64,code=#300' (default 1: all)")
    p.add_argument("--source", action="append", default=[], metavar="NAME=PATH",
                   help="a training source (local file, s3:// / gs:// URI or HF dataset id); "
                   "repeat per source. Without any, the built-in synthetic corpora are used")
    p.add_argument("--corpora", default=None, help="where the built-in corpora are written "
                   "(default: ~/.cache/dmt-sweep/corpora)")
    p.add_argument("--scale", default="1", help="multiply every amount by this fraction for a "
                   "quick run: '--scale 1/64' trains on 1/64 of what the strategy names (counts "
                   "are scaled too, rounded down, at least 1). Changes the stage ids")
    p.add_argument("--storage", default="./runs", help="run storage: folder or s3:// / gs:// URI")
    p.add_argument("--workers", type=int, default=1, help="Ray Train workers per stage")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--cpus-per-worker", type=float, default=None,
                   help="CPUs each worker reserves (default: fit's choice)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    p.add_argument("--seed", type=int, default=0, help="data selection/order and init seed")
    p.add_argument("--epochs", type=int, default=None, help="default 3 (the paper)")
    p.add_argument("--micro-batch", type=int, default=None, help="samples per forward pass")
    p.add_argument("--global-batch", type=int, default=None, help="samples per step (16)")
    p.add_argument("--max-len", type=int, default=None, help="tokens per sample (2048)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (2e-5)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=None)
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="mid-stage checkpoint every N steps (a crashed stage resumes there)")
    p.add_argument("--progress-bars", action="store_true", help="show Ray Data's progress bars")
    p.add_argument("--max-failures", type=int, default=1, help="worker-group restarts per stage")
    return p


def scale_amount(amount: Amount, scale: Fraction) -> Amount:
    if isinstance(amount, int):
        return max(1, int(amount * scale)) if amount else 0
    return amount * scale


def scale_stages(stages: Sequence[st.Stage], scale: Fraction) -> tuple[st.Stage, ...]:
    if scale == 1:
        return tuple(stages)
    return tuple(replace(s, recipe=make_recipe((src, scale_amount(a, scale)) for src, a in s.recipe))
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


def build_settings(args: argparse.Namespace) -> TrainSettings:
    chosen = {"epochs": args.epochs, "micro_batch": args.micro_batch, "max_len": args.max_len,
              "global_batch": args.global_batch, "lr": args.lr, "precision": args.precision,
              "checkpoint_every_steps": args.checkpoint_every}
    return TrainSettings(seed=args.seed, **{k: v for k, v in chosen.items() if v is not None})


def build_sources(args: argparse.Namespace, needed: set[str]):
    """(specs, sources fingerprint or None). Built-ins are identified by name, as sweep/plan.py
    does, so a stage trained here and the same stage planned by a sweep share one id."""
    from trainers.sources import SourceSpec

    if args.source:
        specs = {}
        for text in args.source:
            name, sep, location = text.partition("=")
            if not sep or not name.strip() or not location.strip():
                raise SystemExit(f"--source {text!r} is not NAME=PATH")
            specs[name.strip()] = SourceSpec(name.strip(), location.strip())
        missing = sorted(needed - set(specs))
        if missing:
            raise SystemExit(f"the strategy reads {missing}: add --source NAME=PATH for each "
                             "(built-in corpora are used only when no --source is given)")
        return specs, None
    from trainers.corpora import builtin_specs

    directory = write_corpora(args.corpora)
    specs = builtin_specs(directory)
    return specs, {name: {"location": f"builtin:{name}"} for name in specs}


def write_corpora(directory: str | None) -> Path:
    """The built-in corpora, written once per machine (they are deterministic)."""
    from filelock import FileLock

    from trainers.corpora import write_builtin_corpora
    from trainers.model import cache_root

    out = Path(directory) if directory else cache_root() / "corpora"
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if not (out / "metadata.json").exists():
            write_builtin_corpora(out)
    return out


def print_event(event: dict) -> None:
    status = event["status"]
    extra = ""
    if status == "trained":
        extra = f"  ({event['wall_s']:.0f} s)"
    elif status == "waiting":
        holder = event.get("holder") or {}
        extra = f"  (held by {holder.get('host')} pid {holder.get('pid')})"
    print(f"[stage {event['index'] + 1}/{event['of']}] {status:8s} {event['stage_id']}  "
          f"{event['recipe']}{extra}", flush=True)


def connect_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return  # a caller (a test, a notebook) already chose the cluster
    if address:
        ray.init(address=address)
    else:
        ray.init(include_dashboard=False)


def main(argv: Sequence[str] | None = None):
    """Run the command; returns the StageResults (tests call this in-process)."""
    from trainers.stages import missing_stages, run_stages

    args = build_parser().parse_args(argv)
    stages = scale_stages(build_stages(args), Fraction(args.scale))
    settings = build_settings(args)
    specs, sources_fp = build_sources(args, {s for stage in stages for s, _ in stage.recipe})
    if missing_stages(args.model, stages, specs, args.storage, settings=settings, seed=args.seed,
                      sources_fp=sources_fp):
        connect_ray(args.address)  # only training needs Ray: a full re-run skips its start-up
        if not args.progress_bars:
            import ray.data

            # Per-worker dataset bars drown the stage lines that are this command's output.
            ray.data.DataContext.get_current().enable_progress_bars = False
    resources = {"CPU": args.cpus_per_worker} if args.cpus_per_worker is not None else None
    print(f"{args.strategy}: {len(stages)} stage(s) of {args.model} in {args.storage}: "
          + " -> ".join(format_recipe(s.recipe) for s in stages), flush=True)
    start = time.time()
    results = run_stages(args.model, stages, specs, args.storage, settings=settings,
                         seed=args.seed, workers=args.workers, use_gpu=args.gpu,
                         max_failures=args.max_failures, on_event=print_event,
                         resources_per_worker=resources, sources_fp=sources_fp)
    for i, r in enumerate(results, 1):
        print(f"stage {i}: {r.stage_id}  {'trained' if r.trained else 'reused '}  {r.path}")
    trained = sum(r.trained for r in results)
    print(f"done in {time.time() - start:.0f} s: {trained} trained, "
          f"{len(results) - trained} reused", flush=True)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
