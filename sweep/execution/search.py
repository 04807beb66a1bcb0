"""Adaptive search over the candidate space: Ray Tune with Optuna's sampler (TPE), each trial a
run trained and scored exactly as the sweep's (same stage ids, so stages are shared with the
grid and with each other), started from the runs already finished in the storage, stopped by
the budget (runs or hours) or when the predicted gain is within noise.

`Objective`: one metric, or weights over metrics, each oriented so that more is better (a
loss enters negated); its standard error combines theirs. `GainWithinNoise`: after each trial,
a Gaussian process (sweep/decision/fits.py) over every finished point predicts the candidates;
the search stops when the best predicted mean exceeds the best observed value by no more than
that value's own noise (1.96 standard errors), after at least `min_trials` points.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from ray import tune
from ray.tune.search import ConcurrencyLimiter
from ray.tune.search.optuna import OptunaSearch

from core.storage import Storage
from sweep.decision.features import FeatureSpace
from sweep.decision.fits import GaussianProcess
from sweep.decision.observations import Z95, observations
from sweep.decision.search_space import SearchSpace
from sweep.execution.concurrency import DRIVER_RESOURCE, DRIVER_SHARE
from sweep.execution.console import console_callback
from sweep.execution.job import TrialJob
from sweep.execution.trial import trial
from sweep.planning.plan import run_id, run_stage_ids
from sweep.reporting.result_set import ResultSet
from sweep.reporting.results import has_result, read_result
from sweep.study.candidates import Composition
from sweep.study.grid import run_of
from sweep.study.presets import Preset, preset_from_dict, preset_to_dict

MIN_TRIALS = 6
MAX_STOP_CANDIDATES = 4000


@dataclass(frozen=True)
class Objective:
    weights: tuple[tuple[str, float], ...]  # (metric, weight), applied to oriented values

    @classmethod
    def parse(cls, text: str, resolve=lambda name: name) -> Objective:
        """"gsm8k/flexible" or "gsm8k/flexible=1,general/loss=0.5"; `resolve` maps an ability's
        name to its headline metric."""
        weights = []
        for part in text.split(","):
            name, _, weight = part.partition("=")
            weights.append((resolve(name.strip()), float(weight) if weight else 1.0))
        return cls(tuple(weights))

    def of(self, rows: Sequence[Mapping]) -> tuple[float, float] | None:
        """(value, standard error) of one run's rows; None when a metric is missing."""
        by_metric = {r["metric"]: r for r in rows}
        value = var = 0.0
        for metric, weight in self.weights:
            row = by_metric.get(metric)
            if row is None or row.get("value") is None or not math.isfinite(row["value"]):
                return None
            sign = 1.0 if row.get("higher_is_better") in (None, True) else -1.0
            se = ((row["ci_high"] - row["ci_low"]) / (2 * Z95)) \
                if row.get("ci_low") is not None and row.get("ci_high") is not None else 0.0
            value += weight * sign * row["value"]
            var += (weight * se) ** 2
        return value, math.sqrt(var)


@dataclass(frozen=True)
class SearchSetup:
    """What every trial shares (passed once through the object store)."""
    space: SearchSpace
    objective: Objective
    preset: dict  # preset_to_dict
    model: str
    provenance: dict | None


def search_trial(config: dict, setup: SearchSetup) -> None:
    """One point: its run (trained and scored unless its result exists), then its objective."""
    preset = preset_from_dict(setup.preset)
    composition = setup.space.composition(config)
    run = run_of(composition, setup.model)
    stage_ids = run_stage_ids(run, preset)
    rid = run_id(run, preset, stage_ids)
    tune.report({"run_id": rid, "what": composition.key(), "status": "starting"})
    storage = Storage(preset.storage)
    if not has_result(storage, rid):
        trial({"job": TrialJob(run, rid, tuple(stage_ids), preset, setup.provenance)
               .to_config()})
    found = setup.objective.of(read_result(storage, rid))
    if found is None:
        raise ValueError(f"run {rid} has no value for every metric of the objective "
                         f"{dict(setup.objective.weights)}")
    tune.report({"objective": found[0], "objective_se": found[1], "run_id": rid,
                 "what": composition.key(), "status": "done"})


def tune_space(space: SearchSpace) -> dict:
    out = {}
    for name, dim in space.dimensions().items():
        out[name] = tune.choice(list(dim[1])) if dim[0] == "choice" else tune.uniform(*dim[1:])
    return out


class FinalObjectiveSearch(OptunaSearch):
    """Optuna's sampler fed each run's objective only: a run's progress reports (its stages
    and evals) carry none, and Tune's OptunaSearch would fail on them."""

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if result.get(self.metric) is not None:
            super().on_trial_result(trial_id, result)


class GainWithinNoise(tune.Stopper):
    """Stops the whole search once a GP over the finished points predicts no candidate better
    than the best observed by more than that observation's noise."""

    def __init__(self, space: SearchSpace, seeded: Sequence[tuple[Composition, float, float]],
                 min_trials: int = MIN_TRIALS, seed: int = 0):
        self.space, self.seed, self.min_trials = space, seed, min_trials
        self.points: dict[str, tuple[Composition, float, float]] = {
            c.key(): (c, v, se) for c, v, se in seeded}
        self.reason: str | None = None
        self._candidates = _candidates(space, seed)

    def __call__(self, trial_id, result) -> bool:
        if result.get("objective") is not None and "config" in result:
            c = self.space.composition(result["config"])
            self.points[c.key()] = (c, float(result["objective"]),
                                    float(result.get("objective_se") or 0.0))
        return False

    def stop_all(self) -> bool:
        if self.reason is not None:
            return True
        points = list(self.points.values())
        if len(points) < self.min_trials:
            return False
        comps = [p[0] for p in points]
        values = np.array([p[1] for p in points])
        gain, best = predicted_gain(comps, values, self._candidates, self.seed)
        noise = Z95 * points[int(np.argmax(values))][2]
        if gain <= noise:
            self.reason = (f"predicted gain {gain:.4g} over the best observed {best:.4g} is "
                           f"within its noise ({noise:.4g}) after {len(points)} points")
            return True
        return False


def _candidates(space: SearchSpace, seed: int) -> list[Composition]:
    if not space.ratios:
        grid = space.grid()
        if len(grid) <= MAX_STOP_CANDIDATES:
            return grid
    rng = np.random.default_rng(seed)
    dims = space.dimensions()
    out = {}
    for _ in range(MAX_STOP_CANDIDATES):
        config = {n: (d[1][rng.integers(len(d[1]))] if d[0] == "choice"
                      else float(rng.uniform(d[1], d[2]))) for n, d in dims.items()}
        c = space.composition(config)
        out.setdefault(c.key(), c)
    return list(out.values())


def predicted_gain(comps: Sequence[Composition], values: np.ndarray,
                   candidates: Sequence[Composition], seed: int = 0) -> tuple[float, float]:
    """(best predicted mean over the candidates minus the best observed value, that value)."""
    model = GaussianProcess(FeatureSpace.of([*comps, *candidates]), seed).fit(list(comps), values)
    mean, _ = model.predict(list(candidates))
    best = float(np.max(values))
    return float(np.max(mean)) - best, best


def seeded_points(storage: Storage, space: SearchSpace, objective: Objective,
                  model: str) -> list[tuple[Composition, float, float, dict]]:
    """The finished runs the space can express: (composition, objective, se, config)."""
    rows = [r for r in ResultSet.from_storage(storage).rows
            if r["model"] == model and r.get("proxy", "full") == "full"]
    by_run: dict[str, list[dict]] = {}
    for r in rows:
        by_run.setdefault(r["run_id"], []).append(r)
    out, seen = [], set()
    for run_rows in by_run.values():
        found = objective.of(run_rows)
        obs = observations(run_rows, model=model)
        if found is None or not obs:
            continue
        composition = next(iter(obs.values())).points[0].composition
        config = space.config_of(composition)
        if config is None or composition.key() in seen:
            continue
        seen.add(composition.key())
        out.append((composition, found[0], found[1], config))
    return out


@dataclass
class SearchOutcome:
    trials: list[dict]  # {"run_id", "what", "objective", "objective_se"} of every finished point
    stopped: str  # why the search ended

    def best(self) -> dict | None:
        return max(self.trials, key=lambda t: t["objective"]) if self.trials else None


def run_search(space: SearchSpace, objective: Objective, preset: Preset, *, model: str,
               budget_runs: int | None, budget_hours: float | None, provenance: dict | None,
               max_concurrent: int = 1, seed: int = 0, verbose: bool = False,
               min_trials: int = MIN_TRIALS, trainable=search_trial) -> SearchOutcome:
    """The search on the Ray already started (sweep/execution/driver.py init_ray).
    `trainable(config, setup)`: a point's trial (tests give an emulated one)."""
    storage = Storage(preset.storage)
    seeded = seeded_points(storage, space, objective, model)
    searcher = FinalObjectiveSearch(metric="objective", mode="max", seed=seed,
                                    points_to_evaluate=[p[3] for p in seeded] or None,
                                    evaluated_rewards=[p[1] for p in seeded] or None)
    stopper = GainWithinNoise(space, [(c, v, se) for c, v, se, _ in seeded], min_trials, seed)
    setup = SearchSetup(space, objective, preset_to_dict(preset), model, provenance)
    # Progress reports come before the objective exists; Tune would reject them otherwise.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(trainable, setup=setup),
                            {DRIVER_RESOURCE: DRIVER_SHARE}),
        param_space=tune_space(space),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=max_concurrent),
            num_samples=budget_runs or -1,
            time_budget_s=budget_hours * 3600 if budget_hours else None),
        run_config=tune.RunConfig(
            name=f"search-{preset.name}", storage_path=storage.uri_of("tune"), stop=stopper,
            verbose=1 if verbose else 0,
            callbacks=None if verbose else [console_callback(total=budget_runs)]))
    results = tuner.fit()
    trials = [{k: r.metrics.get(k) for k in ("run_id", "what", "objective", "objective_se")}
              for r in results if r.error is None and r.metrics.get("objective") is not None]
    stopped = stopper.reason or ("budget of runs spent" if budget_runs else "time budget spent")
    trials += [{"run_id": None, "what": c.key(), "objective": v, "objective_se": se,
                "seeded": True} for c, v, se, _ in seeded]
    return SearchOutcome(trials, stopped)
