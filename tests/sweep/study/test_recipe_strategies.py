"""Recipes are exact and canonical; strategies are pure lists of stages (GRID.md RQ4)."""

from fractions import Fraction as F

import pytest

from sweep.study import strategies as st
from trainers.data.recipe import format_recipe, make_recipe, parse_amount, parse_recipe


def test_amounts_are_fractions_or_counts_never_strings():
    assert parse_amount("1/256") == F(1, 256)
    assert parse_amount("1") == parse_amount("1.0") == F(1)
    assert parse_amount("#300") == 300 and isinstance(parse_amount("#300"), int)
    with pytest.raises(TypeError):
        make_recipe([("math", "1/4")])
    with pytest.raises(TypeError):
        make_recipe([("math", 0.25)])
    with pytest.raises(ValueError):
        make_recipe([("math", F(3, 2))])


def test_recipe_is_canonical_and_round_trips():
    a = parse_recipe("math=1/4, code=1/4,general=#30")
    b = make_recipe([("general", 30), ("code", F(1, 4)), ("math", F(1, 4))])
    assert a == b and hash(a) == hash(b)
    assert parse_recipe(format_recipe(a)) == a
    assert F(1, 4) != 4 and parse_recipe("math=1/4") != parse_recipe("math=#4")
    with pytest.raises(ValueError, match="twice"):
        parse_recipe("math=1,math=1/2")


def test_dmt_zero_is_mixed_sequential_and_first_stages_are_shared():
    assert st.dmt(0) == st.mixed_sequential()
    firsts = {st.dmt(k)[0] for k in (F(1), F(1, 4), F(1, 256))} | {st.mixed_sequential()[0]}
    assert len(firsts) == 1
    assert st.dmt(F(1, 256))[1].recipe == (
        ("code", F(1, 256)), ("general", F(1)), ("math", F(1, 256)))


def test_strategies_match_grid():
    assert st.sequential()[0] == st.single("code")[0]
    assert [s.recipe for s in st.sequential()] == [
        (("code", F(1)),), (("math", F(1)),), (("general", F(1)),)]
    assert st.multi_task() == st.mix({"math": F(1), "code": F(1), "general": F(1)})
    staged = st.with_settings(st.dmt(F(1, 4)), settings="S")
    assert all(s.settings == "S" for s in staged)
