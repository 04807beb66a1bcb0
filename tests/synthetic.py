"""Synthetic result sets for the analyses' tests: every run the claims read (base, rq1 singles at
three amounts, rq2 mixes at two, rq3's setups, rq4's strategies on a quarter of each source),
for one or two model sizes, with per-item outcomes drawn around a mean that a "world" gives each
(run, metric): GSM8K and HumanEval as 0/1 items, the held-out loss and HumanEval's reference
log-likelihood as numbers. Items differ in difficulty the same way in every run (a latent per
item, correlation 0.7 between runs), as real test items do, so paired tests have their usual
power. Seeds shift a run's mean a little, as training seeds do."""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction

import numpy as np
from scipy import stats as sp

from sweep.reporting.result_set import ResultSet, _complete
from sweep.reporting.results import (
    RunCost,
    item_rows,
    measurements_of,
    rows_for,
    write_items,
    write_result,
)
from sweep.study import grid

F = Fraction
SMALL, LARGE = "smollm2_135m", "llama_7b"
SPOTS = (
    [("base", "base", None, None)]
    + [("rq1", f"{s} only", f, None) for s in ("math", "code", "general")
       for f in (F(1, 16), F(1, 4), F(1, 2))]
    + [("rq2", "mix", f, None) for f in (F(1, 16), F(1, 4))]
    + [("rq3", "fixed general", f, None) for f in (F(1, 16), F(1, 4))]
    + [("rq3", "fixed 1/64 general", F(1, 16), None)]
    + [("rq4", s, F(1, 4), None) for s in ("multi-task", "sequential", "mixed sequential")]
    + [("rq4", "DMT", F(1, 4), F(1, 4))]
)
METRICS = {"gsm8k/flexible": "binary", "humaneval/pass@1": "binary",
           "humaneval/ref_logprob": "continuous", "general/loss": "continuous"}
RHO = 0.7  # how alike two runs are on the same item
World = Callable[[str, str, str, Fraction | None, Fraction | None, str], float]


def noise(model, question, strategy, f, k, metric) -> float:
    """Every run the same: nothing to find."""
    return {"gsm8k/flexible": 0.3, "humaneval/pass@1": 0.2, "humaneval/ref_logprob": -0.8,
            "general/loss": 1.0}[metric]


RISING = {F(1, 16): 0.15, F(1, 4): 0.30, F(1, 2): 0.45}
FALLING = {F(1, 16): 0.45, F(1, 4): 0.30, F(1, 2): 0.15}


def _accuracy(sign: float, source: str, strategy: str, f, question: str) -> float | None:
    """Accuracy of math (or code) trained alone: rising with the amount (`sign` -1: falling)."""
    if strategy == f"{source} only" and question in ("rq1", "rq2"):
        return (RISING if sign > 0 else FALLING)[f]
    return None


def paper_world(sign: float = 1.0) -> World:
    """The paper's findings (sign +1), or each one reversed (sign -1)."""
    def mean(model, question, strategy, f, k, metric):
        lift = 0.2 * sign if model == LARGE else 0.0
        if metric == "gsm8k/flexible":
            return lift + _gsm8k(sign, question, strategy, f)
        if metric == "humaneval/pass@1":
            return lift + (_accuracy(sign, "code", strategy, f, question) or 0.05)
        if metric == "humaneval/ref_logprob":
            return -0.8
        return _loss(sign, question, strategy, f)
    return mean


def _gsm8k(sign, question, strategy, f) -> float:
    own = _accuracy(sign, "math", strategy, f, question)
    if own is not None:
        return own
    single = (RISING if sign > 0 else FALLING).get(f, 0.0)
    if question == "rq2":  # mixing: +0.1 at the small amount, -0.1 at the large (reversed: -/+)
        return single + (0.1 if f == F(1, 16) else -0.1) * sign
    if question == "rq3":
        if sign > 0:  # the amount matters, the ratio does not
            return {F(1, 4): 0.30, F(1, 16): 0.15}[f]
        return 0.30 if strategy == "fixed general" else 0.10  # the ratio matters, not the amount
    if question == "rq4":
        paper = {"multi-task": 0.30, "sequential": 0.10, "mixed sequential": 0.10, "DMT": 0.25}
        reversed_ = {"multi-task": 0.10, "sequential": 0.30, "mixed sequential": 0.30,
                     "DMT": 0.10}
        return (paper if sign > 0 else reversed_)[strategy]
    return 0.05


def _loss(sign, question, strategy, f) -> float:
    if strategy == "general only":  # levels off (reversed: still falling fast)
        return ({F(1, 16): 1.0, F(1, 4): 0.80, F(1, 2): 0.79} if sign > 0 else
                {F(1, 16): 1.2, F(1, 4): 1.0, F(1, 2): 0.6})[f]
    if question == "rq4" and strategy in ("mixed sequential", "DMT"):
        return 0.80
    return 1.2 if strategy != "base" else 1.5


def results(world: World, seeds: int = 1, n: int = 400, models=(SMALL, LARGE), rng_seed: int = 0,
            drop: Callable[[str, str], bool] = lambda question, model: False,
            seed_sd: float = 0.01) -> ResultSet:
    """A ResultSet (rows and items in memory) of every spot for each model and seed."""
    rng = np.random.default_rng(rng_seed)
    latent = {metric: rng.normal(size=n) for metric in METRICS}  # each item's difficulty
    rows, items = [], {}
    for model in models:
        for question, strategy, f, k in SPOTS:
            if drop(question, model):
                continue
            for seed in range(1 if question == "base" else seeds):
                run_id = f"{question}-{strategy.replace(' ', '_')}-{f}-{k}-{model}-{seed}"
                shift = rng.normal(0, seed_sd) if seeds > 1 else 0.0
                for metric, kind in METRICS.items():
                    mu = world(model, question, strategy, f, k, metric) + shift
                    z = RHO * latent[metric] + np.sqrt(1 - RHO ** 2) * rng.normal(size=n)
                    if kind == "binary":  # P(correct) = mu exactly; hard items hard everywhere
                        values = (z < sp.norm.ppf(min(max(mu, 1e-6), 1 - 1e-6))).astype(float)
                    else:
                        values = mu + 0.2 * z
                    items.setdefault(run_id, {})[metric] = {f"q{i}": float(v)
                                                            for i, v in enumerate(values)}
                    scale = 100.0 if kind == "binary" else 1.0
                    rows.append(_complete({
                        "run_id": run_id, "preset": "local", "question": question,
                        "model": model, "strategy": strategy, "amounts": "",
                        "fraction": None if f is None else f"{f.numerator}/{f.denominator}",
                        "k": None if k is None else f"{k.numerator}/{k.denominator}",
                        "seed": seed, "metric": metric, "kind": kind,
                        "value": scale * float(values.mean()), "judged": True, "n": n,
                        "ci_low": None, "ci_high": None}))
    return ResultSet(rows, "synthetic", _items=items)


# ---- a small sweep in a storage, as the trials write it (the report's tests) ----------------

COST = RunCost(tokens_trained=1, tokens_in_stages=1, wall_hours=0.1, gpu_hours=0.0)


P_MATH = {"base": 0.02, "math only": 0.45, "code only": 0.02, "general only": 0.02, "mix": 0.45}


def eval_out(strategy: str, seed: int) -> dict:
    r = random.Random(f"{strategy}-{seed}")
    gsm = [{"item": f"gsm8k/{i}", "metric": "accuracy_flexible",
            "value": float(r.random() < P_MATH[strategy])} for i in range(120)]
    lp = [{"item": f"gsm8k/{i}", "metric": "ref_logprob", "value": -1.5 + r.gauss(0, 0.1)}
          for i in range(120)]
    he = [{"item": f"HumanEval/{i}", "metric": "pass@1", "value": 0.0} for i in range(20)]
    loss = [{"item": f"chat{i}", "metric": "general_loss",
             "value": 2.0 - 0.3 * (strategy != "base") + r.gauss(0, 0.05)} for i in range(40)]

    def mean(rows):
        return sum(x["value"] for x in rows) / len(rows)

    return {"gsm8k": {"metrics": {"accuracy_flexible": mean(gsm), "ref_logprob": mean(lp)},
                      "items": gsm + lp},
            "humaneval": {"metrics": {"pass@1": 0.0}, "items": he},
            "general_loss": {"metrics": {"general_loss": mean(loss)}, "items": loss},
            "mtbench": {"metrics": {"score": None}, "judged": False}}


def write_sweep(store, seeds: int = 1) -> dict:
    ids = {}
    for i, run in enumerate(grid.build_grid("rq2", ["smollm2_135m"], (F(1, 4),), seeds=seeds)):
        rid = f"{run.question}-{run.strategy.replace(' ', '_')}-s{run.seed}-{i}"
        out = eval_out(run.strategy, run.seed)
        write_items(store, rid, item_rows(rid, out))
        write_result(store, rid, rows_for(run, rid, "local", [], measurements_of(out), COST))
        ids[(run.strategy, run.seed)] = rid
    return ids
