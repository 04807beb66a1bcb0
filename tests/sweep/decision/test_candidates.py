"""The candidate space: every grid run is a composition whose stages are the run's own, amounts
snap to the sampler's levels, ratios over tokens map to amounts, and keys pair runs."""

from __future__ import annotations

from fractions import Fraction as F

import pytest

from sweep.study import grid
from sweep.study.candidates import LEVELS, Composition, NotInSpace, snap


def test_every_grid_run_is_a_composition_with_the_same_stages():
    runs = grid.build_all(["m"], tsne=True)
    for run in runs:
        c = grid.composition_of(run)
        assert [s.recipe for s in grid.run_of(c, "m").stages] == [s.recipe for s in run.stages]
        assert Composition.from_dict(c.to_dict()) == c
    keys = {grid.composition_of(r).key() for r in runs}
    # rq2's mix at f=1 and rq4's multi-task are one composition; DMT's k=1/4 is its own
    assert "mix [code=1,general=1,math=1]" in keys
    assert "dmt k=1/4 specialized=code,math general=general [code=1,general=1,math=1]" in keys


def test_snap_and_ratios():
    assert snap(F(1, 3)) == F(1, 4) and snap(0.7) == F(1, 2) and snap(1e-6) == F(1, 256)
    assert snap(F(3, 4)) == 1  # log2 0.75 = -0.415: nearer 1 than 1/2
    with pytest.raises(ValueError):
        snap(0)
    tokens = {"math": 1000.0, "code": 4000.0}
    c = Composition.from_ratios({"math": 0.5, "code": 0.5}, total=0.4, source_tokens=tokens)
    # 0.4 x 5000 = 2000 tokens, half each: math 1000/1000 -> 1, code 1000/4000 -> 1/4
    assert dict(c.amounts) == {"math": 1, "code": F(1, 4)}
    assert c.token_ratios(tokens) == {"code": 0.5, "math": 0.5}
    assert Composition.from_ratios({"math": 1, "code": 0}, 0.1, tokens).sources == ("math",)


def test_what_the_space_cannot_describe_is_named():
    with pytest.raises(NotInSpace, match="counts are not in the space"):
        Composition.from_stages(["math=#300"], "mix")
    with pytest.raises(NotInSpace, match="not in the space"):
        Composition.from_stages(["math=1", "code=1", "general=1/2"], "curriculum")
    assert all(level in LEVELS for level in (F(1), F(1, 256)))
