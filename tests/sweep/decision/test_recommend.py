"""sweep.recommend finds a planted optimum, says "no signal" on noise, gives a Pareto set when
abilities pull apart, and proxies are checked against full runs by how often they agree."""

from __future__ import annotations

import json
import math
import random
from fractions import Fraction as F

import numpy as np
import pytest

from sweep import recommend as command
from sweep.decision import proposals as pr
from sweep.decision.agreement import agreement
from sweep.decision.fits import judge
from sweep.decision.olmix import export_olmix
from sweep.decision.recommend import recommend
from sweep.reporting.result_set import ResultSet, _complete
from sweep.study.candidates import LEVELS, Composition

SOURCES = ("math", "code", "general")


def _points(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    levels = LEVELS[::2]  # 1, 1/4, 1/16, 1/64, 1/256
    return [{s: rng.choice(levels) for s in SOURCES} for _ in range(n)]


def _rows(surfaces: dict, points, noise: float, seed: int = 0, proxy: str = "full",
          model: str = "m") -> list[dict]:
    """Result rows of one-stage mixes: each metric's value = surface + Gaussian noise of the
    size its interval says."""
    rng = random.Random(seed)
    rows = []
    for i, amounts in enumerate(points):
        c = Composition.mix(amounts)
        recipe = ",".join(f"{s}={a}" for s, a in c.amounts)
        for metric, (surface, higher) in surfaces.items():
            v = surface(c) + rng.gauss(0, noise)
            rows.append({"run_id": f"{proxy}-{i}", "model": model, "strategy": "mix", "k": None,
                         "stages": [recipe], "amounts": recipe, "metric": metric, "value": v,
                         "ci_low": v - 1.96 * noise, "ci_high": v + 1.96 * noise, "n": 200,
                         "kind": "binary" if metric.endswith("acc") else "continuous",
                         "proxy": proxy, "higher_is_better": higher, "preset": "synthetic",
                         "question": "rq3", "seed": 0, "stage_ids": [f"s{i}"]})
    return rows


def _log2(c: Composition, s: str) -> float:
    a = c.amount_of(s)
    return math.log2(a) if a else -10.0


def planted(c):  # best at math 1/8, code 1/2, general as much as possible
    return (0.5 - 0.02 * (_log2(c, "math") + 3) ** 2 - 0.02 * (_log2(c, "code") + 1) ** 2
            + 0.01 * _log2(c, "general"))


def test_a_planted_optimum_is_found_and_noise_gets_no_signal():
    rec = recommend(_rows({"x/acc": (planted, True)}, _points(24), noise=0.01))
    assert rec["chosen"]["x/acc"] and not rec["no_signal"]
    (best,) = rec["proposals"]
    assert best["amounts"] == {"code": "1/2", "general": "1", "math": "1/8"}
    assert not best["outside_sampled"]["sampled"]  # 1/2 and 1/8 were never run: a proposal
    fit = rec["fits"][rec["chosen"]["x/acc"]]["x/acc"]
    assert fit["decision_accuracy"]["ci_low"] > 0.8 and fit["spearman"]["ci_low"] > 0.8

    flat = recommend(_rows({"x/acc": (lambda c: 0.3, True)}, _points(24), noise=0.01, seed=3))
    assert flat["no_signal"] == ["x/acc"] and flat["proposals"] == []
    # no pair clear of noise: decision accuracy is null, not NaN (strict JSON for any reader)
    tied = judge("m", np.arange(5.0), np.full(5, 0.3), np.full(5, 0.1)).to_dict()
    assert tied["decision_accuracy"]["value"] is None
    json.dumps(tied, allow_nan=False)


def test_abilities_that_pull_apart_give_a_pareto_set():
    def math_wants(c):
        return 0.05 * _log2(c, "math") - 0.02 * max(0.0, _log2(c, "code") + 8)

    def code_wants(c):
        return 0.05 * _log2(c, "code") - 0.02 * max(0.0, _log2(c, "math") + 8)

    rec = recommend(_rows({"m/acc": (math_wants, True), "c/acc": (code_wants, True)},
                          _points(30), noise=0.005))
    best = {p["ability"]: p["amounts"] for p in rec["proposals"]}
    assert best["m/acc"].get("math") == "1" and best["c/acc"].get("code") == "1"
    assert best["m/acc"] != best["c/acc"] and len(rec["pareto"]) >= 2
    front = [(p["predicted"]["m/acc"]["value"], p["predicted"]["c/acc"]["value"])
             for p in rec["pareto"]]
    for a in front:  # none of the set is better at both than another member
        assert not any(b[0] > a[0] and b[1] > a[1] for b in front)


def test_agreement_of_a_faithful_and_of_a_blind_proxy():
    points = _points(16, seed=5)
    full = _rows({"x/acc": (planted, True), "x/loss": (lambda c: -planted(c), False)}, points,
                 noise=0.005)
    faithful = _rows({"x/acc": (lambda c: planted(c) / 2 - 0.1, True),
                      "x/loss": (lambda c: -planted(c), False)}, points, noise=0.005, seed=1,
                     proxy="lora")
    blind = _rows({"x/acc": (lambda c: 0.2, True), "x/loss": (lambda c: 0.2, False)}, points,
                  noise=0.05, seed=2, proxy="lora")
    good = agreement(faithful, full)
    assert good["x/acc"]["group"] == "accuracy" and good["x/loss"]["group"] == "likelihood"
    distinct = len({Composition.mix(a).key() for a in points})
    assert good["x/acc"]["paired"] == distinct >= 12  # a composition drawn twice is one
    assert good["x/acc"]["kendall"]["ci_low"] > 0.5
    assert good["x/acc"]["decision_accuracy"]["value"] > 0.9
    bad = agreement(blind, full)
    assert bad["x/acc"]["decision_accuracy"]["ci_low"] < 0.5 < good["x/acc"][
        "decision_accuracy"]["ci_low"]


def _result_set(rows) -> ResultSet:
    """The rows with 20 items each whose mean is the row's value (an export needs items)."""
    items: dict = {}
    for r in rows:
        spread = [((i % 10) - 4.5) * 0.004 for i in range(20)]
        items.setdefault(r["run_id"], {})[r["metric"]] = {
            f"item{i}": r["value"] + d for i, d in enumerate(spread)}
    return ResultSet([_complete(r) for r in rows], "synthetic", _items=items)


def test_the_command_on_an_export_writes_the_section_and_refuses_a_weak_proxy(tmp_path, capsys):
    full = _result_set(_rows({"x/score": (planted, True)}, _points(12), noise=0.01))
    full.export(tmp_path / "full")
    assert command.main(["--results", str(tmp_path / "full"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["proposals"][0]["ability"] == "x/score"
    report = (tmp_path / "full" / "report" / "report.md").read_text()
    assert "## Recommendation" in report and "best predicted" in report
    assert (tmp_path / "full" / "report" / "fig_recommendation.png").is_file()

    blind = _result_set(_rows({"x/score": (lambda c: 0.2, True)}, _points(12), noise=0.05,
                              proxy="lora"))
    blind.export(tmp_path / "lora")
    with pytest.raises(SystemExit, match="give --full"):
        command.main(["--results", str(tmp_path / "lora")])
    with pytest.raises(SystemExit, match="below it"):
        command.main(["--results", str(tmp_path / "lora"), "--full", str(tmp_path / "full"),
                      "--min-agreement", "0.7"])


def test_olmix_export_writes_token_ratios_of_one_stage_runs(tmp_path):
    rows = _rows({"x/acc": (planted, True)}, _points(4), noise=0.01)
    staged = dict(rows[0], run_id="staged", strategy="DMT", k="1/4",
                  stages=["code=1,math=1", "code=1/4,general=1,math=1/4"])
    summary = export_olmix([*rows, staged], tmp_path, None,
                           {"math": 1000.0, "code": 1000.0, "general": 2000.0})
    assert summary["runs"] == 4 and summary["left_out"] == {"staged (not one mixture)": 1}
    lines = (tmp_path / "ratios.csv").read_text().splitlines()
    assert lines[0] == "run_id,code,general,math"
    for line in lines[1:]:
        assert sum(float(v) for v in line.split(",")[1:]) == pytest.approx(1.0)
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == "run_id,x/acc"


def test_pareto_lists_compositions_predicted_alike_once_by_the_cheapest():
    """A fit blind to code predicts the same for every amount of it: the front keeps one of
    each such group (the least code), where the old rule kept every amount; a real trade-off
    between two abilities stays."""
    comps = [Composition.mix({"math": m, "code": c}) for m in ("1", "1/4") for c in
             ("1/2", "1/16", "1/256")]
    math = np.array([0.5, 0.5, 0.5, 0.2, 0.2, 0.2])  # no word on code
    chat = np.array([1.0, 1.0, 1.0, 0.4, 0.4, 0.4]) + 1e-9 * np.arange(6)  # loss, lower wins
    preds = {"m": (math, None), "l": (chat, None)}
    costs = [pr.training_tokens(c, {"math": 100.0, "code": 50.0}) for c in comps]
    front = pr.pareto(preds, {"m": True, "l": False}, costs)
    assert [comps[i].amount_of("code") for i in front] == [F(1, 256), F(1, 256)]
    assert [comps[i].amount_of("math") for i in front] == [F(1), F(1, 4)]


def test_a_predicted_share_stays_between_0_and_100():
    """A fit's interval far from the data may run past a scale's end; a binary metric's (in
    percent) is held to 0-100, an unbounded one is left as the fit says."""
    preds = {"acc": (np.array([11.1, 99.0]), np.array([19.3, 3.0])),
             "loss": (np.array([0.21]), np.array([0.15]))}
    at = pr.predicted_at(0, {"acc": preds["acc"]}, {"acc": (0.0, 100.0)})["acc"]
    assert (at.value, at.ci_high) == (11.1, pytest.approx(48.9, abs=0.1)) and at.ci_low == 0.0
    assert pr.predicted_at(1, {"acc": preds["acc"]}, {"acc": (0.0, 100.0)})["acc"].ci_high == 100
    assert pr.predicted_at(0, {"loss": preds["loss"]})["loss"].ci_low < 0
