"""The grids follow GRID.md: runs per question and model size, their stages, f and k."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from sweep.study import grid
from trainers.data.recipe import parse_recipe

FS = (F(1), F(1, 4), F(1, 16), F(1, 64), F(1, 256))


def _recipes(run):
    return [s.recipe for s in run.stages]


def test_run_counts_per_model_size():
    models = ("llama_7b", "llama_13b", "llama_33b")
    # + 1: the base model; rq2 = its 5 mixes + the 15 single-source runs they are compared with
    counts = {"rq1": 15 + 1, "rq2": 5 + 15 + 1, "rq3": 15 + 1, "rq4": 6 + 5 + 1,
              "ablation": 5 + 1, "tsne": 2}
    for question, n in counts.items():
        runs = grid.build_grid(question, models)
        assert len(runs) == 3 * n, question
        assert {r.model for r in runs} == set(models)
        assert len({r.label for r in runs}) == len(runs)
        bases = [r for r in runs if r.question == "base"]
        assert len(bases) == (0 if question == "tsne" else 3)
        assert all(r.stages == () and r.strategy == "base" for r in bases)


def test_rq2_contains_rq1s_singles_and_seeds_repeat_trained_runs():
    rq1 = {r.label for r in grid.build_grid("rq1", ["m"])}
    rq2 = grid.build_grid("rq2", ["m"])
    assert {r.label for r in rq2 if r.question == "rq1"} == rq1 - {"base/base/m"}
    three = grid.build_grid("rq2", ["m"], (F(1, 4),), seeds=3)
    assert [(r.strategy, r.seed) for r in three] == [("base", 0)] + [
        (s, seed) for s in ("math only", "code only", "general only", "mix")
        for seed in range(3)]
    assert len({r.label for r in three}) == len(three)
    with pytest.raises(ValueError, match="seeds"):
        grid.build_grid("rq2", ["m"], seeds=0)
    assert grid.run_from_dict(grid.run_to_dict(three[-1])) == three[-1]


def test_rq1_rq2_ablation_recipes():
    rq1 = [r for r in grid.build_grid("rq1", ["m"]) if r.stages]
    assert {(r.strategy, r.fraction): _recipes(r) for r in rq1} == {
        (f"{s} only", f): [parse_recipe(f"{s}={f}")] for s in ("math", "code", "general")
        for f in FS}
    for question, general in (("rq2", "general"), ("ablation", "general_nocm")):
        runs = [r for r in grid.build_grid(question, ["m"]) if r.strategy == "mix"]
        assert [_recipes(r) for r in runs] == [
            [parse_recipe(f"math={f},code={f},{general}={f}")] for f in FS]
        assert [r.fraction for r in runs] == list(FS) and {r.strategy for r in runs} == {"mix"}


def test_rq3_setups():
    runs = {(r.strategy, r.fraction): _recipes(r)[0] for r in grid.build_grid("rq3", ["m"])
            if r.stages}
    assert len(runs) == 15
    for f in FS:
        assert runs[("fixed general", f)] == parse_recipe(f"math={f},code={f},general=1")
        assert runs[("fixed specialized", f)] == parse_recipe(f"math=1,code=1,general={f}")
        assert runs[("fixed 1/64 general", f)] == parse_recipe(f"math={f},code={f},general=1/64")


def test_rq4_strategies_and_k():
    runs = grid.build_grid("rq4", ["m"], ks=(F(1, 2), F(1, 256)))
    by = {(r.strategy, r.k): _recipes(r) for r in runs}
    assert by[("sequential", None)] == [parse_recipe("code=1"), parse_recipe("math=1"),
                                       parse_recipe("general=1")]
    assert by[("mixed sequential", None)] == [parse_recipe("math=1,code=1"),
                                             parse_recipe("general=1")]
    assert by[("multi-task", None)] == [parse_recipe("math=1,code=1,general=1")]
    assert by[("DMT", F(1, 2))] == [parse_recipe("math=1,code=1"),
                                   parse_recipe("general=1,math=1/2,code=1/2")]
    assert len(runs) == 8 + 1  # and the base model
    assert [r.k for r in grid.build_grid("rq4", ["m"]) if r.strategy == "DMT"] == list(FS)


def test_tsne_is_base_and_dmt_1_256():
    base, dmt = grid.build_grid("tsne", ["m"])
    assert base.stages == () and base.amounts == ()
    assert dmt.k == F(1, 256) and _recipes(dmt)[1] == parse_recipe(
        "general=1,math=1/256,code=1/256")


def test_fraction_override_and_bad_input():
    runs = grid.build_grid("rq2", ["m"], fractions=(F(1, 2), F(1, 8)))
    assert [r.fraction for r in runs if r.strategy == "mix"] == [F(1, 2), F(1, 8)]
    assert {r.fraction for r in runs if r.stages} == {F(1, 2), F(1, 8)}
    with pytest.raises(ValueError, match="unknown question"):
        grid.build_grid("rq9", ["m"])
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        grid.build_grid("rq1", ["m"], fractions=(F(0),))
    with pytest.raises(ValueError, match="twice"):
        grid.build_grid("rq1", ["m"], fractions=(F(1, 4), F(1, 4)))
    with pytest.raises(ValueError, match="share a label"):
        grid.build_grid("rq1", ["m", "m"])


def test_rq3_holds_its_fixed_sources_at_the_amount_and_names_it():
    """The local preset's rq3 (amount 1/4): the held sources at a quarter, named by it as the
    paper names its 1/64 setup (so no cell mixes them with the paper's "fixed general"); f and
    the 1/64 of the whole source; at f = amount, the first two setups are one recipe."""
    spec = grid.GridSpec(amount=F(1, 4))
    runs = {(r.strategy, r.fraction): _recipes(r)[0]
            for r in grid.build_grid("rq3", ["m"], fractions=(F(1, 4), F(1, 16)), spec=spec)
            if r.stages}
    assert sorted({s for s, _ in runs}, key=grid.rq3_order) == [
        "fixed 1/4 general", "fixed 1/4 specialized", "fixed 1/64 general"]
    assert runs[("fixed 1/4 general", F(1, 16))] == parse_recipe("math=1/16,code=1/16,general=1/4")
    assert runs[("fixed 1/4 specialized", F(1, 16))] == parse_recipe(
        "math=1/4,code=1/4,general=1/16")
    assert runs[("fixed 1/64 general", F(1, 16))] == parse_recipe(
        "math=1/16,code=1/16,general=1/64")
    assert runs[("fixed 1/4 general", F(1, 4))] == runs[("fixed 1/4 specialized", F(1, 4))]
    assert grid.rq3_held("fixed general") == ("general", 1)
    assert grid.rq3_held("fixed 1/4 specialized") == ("specialized", F(1, 4))
    with pytest.raises(ValueError, match="not an rq3 setup"):
        grid.rq3_held("mix")
    # results from elsewhere may name a setup otherwise: it sorts last, the table still builds
    assert sorted(["mix", "fixed 1/64 general", "fixed general"], key=grid.rq3_order) == [
        "fixed general", "fixed 1/64 general", "mix"]
