"""sweep.search's machinery on a local Ray, with emulated trials (a response surface instead of
training, so each trial takes milliseconds): Tune drives Optuna's sampler over the candidate
space, starts from the runs already finished in the storage, stops at the budget, and stops
early when the predicted gain is within noise. The real trial path is the sweep's own (each
point a run with the grid's stage ids: tests/sweep/decision/test_candidates.py); the sampler's
efficiency is measured by benchmarks/search_emulated.py, not asserted here."""

from __future__ import annotations

import math
import sys

import pytest
from ray import cloudpickle, tune

from sweep.decision.search_space import SearchSpace
from sweep.execution import search
from sweep.reporting.results import write_result
from sweep.study.candidates import Composition
from sweep.study.presets import get_preset, replace

SPACE = SearchSpace(("math", "code", "general"))
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import tests


def _peak(c: Composition) -> float:
    logs = {s: math.log2(a) for s, a in c.amounts}
    return 0.6 - sum(0.01 * (logs.get(s, -12) + 2) ** 2 for s in SPACE.sources)


def emulated(config, setup):
    c = setup.space.composition(config)
    tune.report({"run_id": None, "what": c.key(), "status": "starting"})  # as a real run does
    value = 0.5 if setup.model == "flat" else _peak(c)
    tune.report({"objective": value, "objective_se": 0.01, "what": c.key(), "run_id": None})


def _preset(tmp_path):
    return replace(get_preset("smoke"), storage=str(tmp_path / "runs"))


def test_objective_orients_each_metric_and_combines_their_errors():
    rows = [{"metric": "a/acc", "value": 0.4, "ci_low": 0.3, "ci_high": 0.5},
            {"metric": "b/loss", "value": 2.0, "ci_low": 1.9, "ci_high": 2.1,
             "higher_is_better": False}]
    value, se = search.Objective.parse("a/acc=1,b/loss=0.5").of(rows)
    assert value == pytest.approx(0.4 - 1.0)
    assert se == pytest.approx(math.hypot(0.1 / 1.96, 0.5 * 0.1 / 1.96), rel=1e-3)
    assert search.Objective.parse("c/x").of(rows) is None


def test_search_starts_from_finished_runs_and_spends_its_budget(ray_local, tmp_path):
    preset = _preset(tmp_path)
    finished = Composition.mix({"math": "1/4", "code": "1/4", "general": "1/4"})
    recipe = ",".join(f"{s}={a}" for s, a in finished.amounts)
    write_result(preset.storage, "rq2-mix-done", [{
        "run_id": "rq2-mix-done", "preset": "smoke", "question": "rq2", "model": "tiny_llama",
        "strategy": "mix", "amounts": recipe, "stages": [recipe], "metric": "gsm8k/flexible",
        "value": 0.55, "n": 100, "ci_low": 0.45, "ci_high": 0.65, "seed": 0}])
    objective = search.Objective.parse("gsm8k/flexible")
    seeded = search.seeded_points(search.Storage(preset.storage), SPACE, objective, "tiny_llama")
    assert [(c.key(), v) for c, v, _, _ in seeded] == [(finished.key(), 0.55)]
    outcome = search.run_search(SPACE, objective, preset, model="tiny_llama", budget_runs=5,
                                budget_hours=None, provenance=None, trainable=emulated,
                                min_trials=50)
    new = [t for t in outcome.trials if not t.get("seeded")]
    assert len(new) == 5 and outcome.stopped == "budget of runs spent"
    assert any(t.get("seeded") and t["objective"] == 0.55 for t in outcome.trials)


def test_search_stops_when_the_predicted_gain_is_within_noise(ray_local, tmp_path):
    outcome = search.run_search(SPACE, search.Objective.parse("x/y"), _preset(tmp_path),
                                model="flat", budget_runs=20, budget_hours=None,
                                provenance=None, trainable=emulated, min_trials=5)
    assert "within its noise" in outcome.stopped
    assert 5 <= len(outcome.trials) < 20
