"""Runs needed to reach a grid's best: sweep.search's sampler (Ray Tune's OptunaSearch, TPE) beside
random search at the same budget and beside the full grid, on an emulated grid, over seeds.

The emulated grid (benchmarks/emulated_grid.json, committed; `--write` regenerates it from its
seed) is a response surface over the candidate space of four sources at the levels 1 ... 1/256
or absent (10,000 mixes): a concave quadratic in log2 amounts with a seeded optimum and
curvature, a penalty per absent source, and one seeded interaction, plus Gaussian noise of
`noise_sd` on every observation. A method "reaches the best" at the first run whose true value
is within `noise_sd` of the grid's best (closer cannot be told apart by one observation). Each
seed gives the search and random search their own streams; the full grid needs every one of
its points to know its best. The searcher is driven through Tune's Searcher interface
(suggest / on_trial_complete), the calls Tune's trial loop makes, without a Ray cluster:
    python benchmarks/search_emulated.py [--seeds 20] [--budget 80]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ray.tune.search.optuna import OptunaSearch

from sweep.decision.search_space import SearchSpace
from sweep.execution.search import tune_space
from sweep.study.candidates import Composition

GRID_FILE = Path(__file__).with_name("emulated_grid.json")
SOURCES = ("math", "code", "general", "tools")


def write_surface(seed: int = 7) -> dict:
    """The surface's parameters from one seed (what the committed file holds)."""
    rng = np.random.default_rng(seed)
    return {"seed": seed, "sources": list(SOURCES),
            "optimum_log2": {s: float(rng.integers(-7, 1)) for s in SOURCES},
            "curvature": {s: round(float(rng.uniform(0.004, 0.02)), 4) for s in SOURCES},
            "absent_penalty": {s: round(float(rng.uniform(0.05, 0.2)), 3) for s in SOURCES},
            "interaction": {"pair": [str(x) for x in rng.choice(SOURCES, 2, replace=False)],
                            "weight": round(float(rng.uniform(-0.006, 0.006)), 4)},
            "base": 0.6, "noise_sd": 0.01}


def true_value(surface: dict, c: Composition) -> float:
    value = surface["base"]
    logs = {}
    for s in surface["sources"]:
        a = c.amount_of(s)
        if a is None:
            value -= surface["absent_penalty"][s]
            continue
        logs[s] = math.log2(a)
        value -= surface["curvature"][s] * (logs[s] - surface["optimum_log2"][s]) ** 2
    a, b = surface["interaction"]["pair"]
    if a in logs and b in logs:
        value += surface["interaction"]["weight"] * logs[a] * logs[b]
    return value


def runs_to_reach(values: list[float], target: float) -> int | None:
    return next((i + 1 for i, v in enumerate(values) if v >= target), None)


def run_search(space, surface, seed: int, budget: int) -> list[float]:
    """True values of the points TPE draws, in order (it sees only noisy ones)."""
    searcher = OptunaSearch(seed=seed)
    # what tune.Tuner does with a param_space: the searcher converts Tune's domains itself
    searcher.set_search_properties("objective", "max", tune_space(space))
    rng = np.random.default_rng(10_000 + seed)
    seen = []
    for i in range(budget):
        config = searcher.suggest(str(i))
        truth = true_value(surface, space.composition(config))
        searcher.on_trial_complete(str(i), {"objective": truth + rng.normal(0,
                                                                            surface["noise_sd"])})
        seen.append(truth)
    return seen


def run_random(space, surface, seed: int, budget: int) -> list[float]:
    """True values of random draws from the same space (Tune's own sampling of its domains)."""
    rng = np.random.default_rng(20_000 + seed)
    domains = tune_space(space)
    return [true_value(surface, space.composition(
        {n: d.sample(random_state=rng) for n, d in domains.items()})) for _ in range(budget)]


def summary(name: str, reached: list[int | None], budget: int) -> str:
    hits = [r for r in reached if r is not None]
    share = len(hits) / len(reached)
    # A seed that never reaches the best within the budget counts as the budget (a lower bound)
    capped = [r if r is not None else budget for r in reached]
    q = statistics.quantiles(capped, n=4)
    return (f"{name:14s} reached {len(hits)}/{len(reached)} seeds ({share:.0%}); runs to reach: "
            f"median {statistics.median(capped):.0f} [IQR {q[0]:.0f}-{q[2]:.0f}] "
            f"(unreached counted as {budget})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--budget", type=int, default=80)
    p.add_argument("--write", action="store_true", help="regenerate emulated_grid.json")
    args = p.parse_args(argv)
    if args.write:
        GRID_FILE.write_text(json.dumps(write_surface(), indent=1) + "\n")
    surface = json.loads(GRID_FILE.read_text())
    space = SearchSpace(tuple(surface["sources"]))
    grid = space.grid()
    truths = [true_value(surface, c) for c in grid]
    best = max(truths)
    target = best - surface["noise_sd"]
    within = sum(t >= target for t in truths)
    print(f"emulated grid: {len(grid)} compositions, best {best:.4f} "
          f"({grid[int(np.argmax(truths))].key()}); {within} within noise of it")
    started = time.perf_counter()
    tpe = [runs_to_reach(run_search(space, surface, s, args.budget), target)
           for s in range(args.seeds)]
    tpe_s = time.perf_counter() - started
    rnd = [runs_to_reach(run_random(space, surface, s, args.budget), target)
           for s in range(args.seeds)]
    print(summary("search (TPE)", tpe, args.budget))
    print(summary("random search", rnd, args.budget))
    print(f"{'random search':14s} expected runs to reach, drawing with replacement: "
          f"{len(grid) / within:.0f} (= {len(grid)} / {within})")
    print(f"{'full grid':14s} {len(grid)} runs to know its best")
    tpe_med = statistics.median(r if r is not None else args.budget for r in tpe)
    rnd_med = statistics.median(r if r is not None else args.budget for r in rnd)
    print(f"ratio search / random search (median runs): {tpe_med / rnd_med:.3f}")
    print(f"ratio search / full grid: {tpe_med / len(grid):.4f}")
    print(f"(sampler time: {tpe_s / args.seeds:.1f} s per seed of {args.budget} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
