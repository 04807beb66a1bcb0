"""Search instead of gridding: Ray Tune with Optuna's sampler over the candidate space, for the
objective you name, within a budget of runs or hours, starting from the runs already in the
storage, stopping once the predicted gain is within noise (sweep/execution/search.py).
    python -m sweep.search --objective gsm8k --budget-runs 12
    python -m sweep.search --objective gsm8k=1,general=0.5 --budget-hours 2 --ratios
    python -m sweep.search --preset smoke --objective gsm8k --strategies mix,dmt \\
        --specialized math,code --general general --budget-runs 4
Each trial is a run the sweep would train the same way (same stage ids): what a search trains,
the grid reuses, and the other way round. `--dry-run` prints the space and the points the
search starts from.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace

import ray

from core.storage import Storage
from sweep import cli
from sweep.decision.search_space import SearchSpace
from sweep.execution.driver import init_ray
from sweep.execution.provenance import sweep_provenance
from sweep.execution.search import Objective, run_search, seeded_points
from sweep.planning.source_sizes import source_tokens_of_preset
from sweep.reporting.tables import BUILTIN
from sweep.study import choices, presets
from sweep.study.presets import source_specs

STRATEGY_NAMES = ("mix", "sequential", "mixed_sequential", "dmt")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sweep.search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--objective", required=True,
                   help="an ability or metric (gsm8k, general, gsm8k/flexible, "
                        "dmt_tool_calls/exact_call), or weights: gsm8k=1,general=0.5 (each "
                        "oriented so that more is better: a loss enters negated)")
    p.add_argument("--preset", default="local", choices=sorted(presets.PRESETS))
    p.add_argument("--model", help="the base model (default: the preset's first)")
    p.add_argument("--strategies", type=cli.parse_names, default=("mix",),
                   help=f"among {', '.join(STRATEGY_NAMES)} (default mix)")
    p.add_argument("--specialized", type=cli.parse_names)
    p.add_argument("--general")
    p.add_argument("--order", type=cli.parse_names)
    p.add_argument("--ratios", action="store_true",
                   help="mixes drawn as a total and ratios over tokens on the simplex")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget-runs", type=int, help="new runs at most")
    budget.add_argument("--budget-hours", type=float,
                        help="hours at most (wall hours on CPU presets, GPU hours on GPU ones)")
    p.add_argument("--min-trials", type=int, default=6,
                   help="points before the stop rule may end the search (default 6)")
    p.add_argument("--max-concurrent", type=int, default=1,
                   help="runs at once (default 1: each draw learns from every finished run)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--storage")
    p.add_argument("--address")
    p.add_argument("--ray-temp-dir")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--dry-run", action="store_true",
                   help="print the space and the finished runs it starts from; run nothing")
    cli.add_source_flags(p)
    cli.add_eval_flags(p)
    cli.add_content_flags(p)
    return p


def build_space(args, preset) -> SearchSpace:
    sources = choices.sources_of(preset)
    unknown = sorted(set(args.strategies) - set(STRATEGY_NAMES))
    if unknown:
        raise SystemExit(f"--strategies: {unknown}; among {', '.join(STRATEGY_NAMES)}")
    staged = set(args.strategies) - {"mix"}
    spec = choices.grid_spec(preset, "rq4" if staged else "rq2", specialized=args.specialized,
                             general=args.general, order=args.order) if staged else None
    try:
        return SearchSpace(
            tuple(sources), tuple(args.strategies),
            specialized=spec.specialized if spec else (), general=spec.general if spec else None,
            order=spec.order if spec and "sequential" in staged else (), ratios=args.ratios,
            source_tokens=source_tokens_of_preset(preset) if args.ratios else None)
    except ValueError as err:
        raise SystemExit(str(err)) from None


def resolve_metric(name: str) -> str:
    """An ability's name -> its headline metric; a metric stays as given."""
    if "/" in name:
        return name
    if name in BUILTIN:
        return BUILTIN[name].metric
    raise SystemExit(f"--objective {name}: name a metric (TASK/METRIC) or one of "
                     f"{', '.join(BUILTIN)}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    preset = presets.get_preset(args.preset)
    if args.storage:
        preset = replace(preset, storage=args.storage)
    preset = cli.choices_from_args(preset, args)
    model = args.model or preset.models[0]
    preset = replace(preset, models=(model,))
    try:
        space = build_space(args, preset)
    except choices.ChoiceError as err:
        raise SystemExit(str(err)) from None
    objective = Objective.parse(args.objective, resolve_metric)
    storage = Storage(preset.storage)
    preset = replace(preset, storage=storage.uri)
    preset = cli.with_content_flags(preset, args, None if args.dry_run else storage)
    if args.dry_run:
        seeded = seeded_points(storage, space, objective, model) if storage.exists("results") \
            else []
        print(f"space: {space.sources}, strategies {space.strategies}"
              + (f", {len(space.grid())} grid points" if not space.ratios else ", ratios"))
        print(f"objective: {dict(objective.weights)}; starts from {len(seeded)} finished runs")
        for c, value, se, _ in seeded:
            print(f"  {c.key()}: {value:.4g} (se {se:.3g})")
        return 0
    source_specs(preset, storage)  # the built-in corpora, once, before trials race for them
    started, dashboard = init_ray(args.address, args.ray_temp_dir, args.verbose)
    if dashboard:
        print(f"Ray dashboard: {dashboard}", flush=True)
    try:
        outcome = run_search(space, objective, preset, model=model,
                             budget_runs=args.budget_runs, budget_hours=args.budget_hours,
                             provenance=sweep_provenance(preset),
                             max_concurrent=args.max_concurrent, seed=args.seed,
                             verbose=args.verbose, min_trials=args.min_trials)
    finally:
        if started:
            ray.shutdown()
    best = outcome.best()
    summary = {"objective": dict(objective.weights), "stopped": outcome.stopped,
               "trials": outcome.trials, "best": best}
    storage.write_json(f"search/{preset.name}-{args.seed}.json", summary)
    print(f"search stopped: {outcome.stopped}; {len(outcome.trials)} points")
    if best:
        print(f"best: {best['what']} objective {best['objective']:.4g} "
              f"[{best['objective'] - 1.96 * best['objective_se']:.4g}, "
              f"{best['objective'] + 1.96 * best['objective_se']:.4g}]"
              + (f" (run {best['run_id']})" if best.get("run_id") else " (a finished run)"))
    print(json.dumps({"stopped": outcome.stopped, "points": len(outcome.trials)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
