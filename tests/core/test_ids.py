"""Stage and run ids are content hashes: same inputs, same id; any input changed, another id."""

import subprocess
import sys
from fractions import Fraction as F

import pytest
from paths import REPO

from core import ids as ident
from sweep.study import strategies as st
from trainers.data.recipe import make_recipe

SETTINGS = {"epochs": 3, "lr": 2e-5, "global_batch": 16, "max_len": 2048, "seed": 0}
SOURCES = {"math": {"location": "/d/math.jsonl", "format": "auto"},
           "code": {"location": "/d/code.json", "format": "auto"},
           "general": {"location": "/d/sharegpt.json", "format": "auto"}}
RECIPE = make_recipe([("math", F(1, 4)), ("code", F(1, 4))])


def sid(parent="model:tiny_llama", recipe=RECIPE, settings=SETTINGS, seed=0, sources=SOURCES):
    return ident.stage_id(parent, recipe, settings, seed, sources)


def test_same_inputs_same_id_in_any_order_and_any_process():
    a = sid()
    assert a == sid(recipe=(("math", F(1, 4)), ("code", F(1, 4))))  # pair order is irrelevant
    assert a == sid(settings=dict(reversed(list(SETTINGS.items()))))
    # Pinned (as tests/sweep/planning/test_stage_ids_pinned.py pins the sweep's): a changed id renames every
    # stored stage. Change it only with a deliberate change (a CODE_VERSION bump).
    assert a == "fc06ebbe0880488a" and len(a) == ident.ID_HEX_CHARS
    code = ("from fractions import Fraction; from core.ids import stage_id; "
            f"print(stage_id('model:tiny_llama', {RECIPE!r}, {SETTINGS!r}, 0, {SOURCES!r}))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, cwd=REPO).stdout.strip()
    assert other == a  # no randomness, timestamps or per-process hash seeds


def test_every_input_changes_the_id():
    variants = [
        sid(parent="model:smollm2_135m"),
        sid(recipe=make_recipe([("math", F(1, 16)), ("code", F(1, 4))])),
        sid(recipe=make_recipe([("math", F(1, 4))])),
        sid(settings={**SETTINGS, "lr": 1e-5}),
        sid(settings={**SETTINGS, "epochs": 1}),
        sid(seed=1),
        sid(sources={**SOURCES, "math": {"location": "/other/math.jsonl", "format": "auto"}}),
    ]
    assert len({sid(), *variants}) == 1 + len(variants)


def test_fraction_and_count_never_collide():
    quarter = sid(recipe=make_recipe([("math", F(1, 4))]))
    four = sid(recipe=make_recipe([("math", 4)]))
    one_fraction = sid(recipe=make_recipe([("math", F(1))]))
    one_count = sid(recipe=make_recipe([("math", 1)]))
    assert quarter != four and one_fraction != one_count
    assert ident.canonical_amount(F(1, 4)) == "1/4" and ident.canonical_amount(4) == 4
    with pytest.raises(TypeError):
        ident.canonical_amount(0.25)


def test_code_version_enters_the_id(monkeypatch):
    before = sid()
    monkeypatch.setattr(ident, "CODE_VERSION", ident.CODE_VERSION + "-next")
    assert sid() != before


def test_unused_sources_do_not_rename_a_stage_but_missing_ones_are_an_error():
    assert sid() == sid(sources={**SOURCES, "general_nocm": {"location": "/d/nocm.json"}})
    with pytest.raises(ValueError, match="math"):
        sid(sources={"code": SOURCES["code"]})


def test_chained_ids_share_the_common_first_stage():
    dmt_a = ident.stage_ids("tiny_llama", st.dmt(F(1, 4)), SETTINGS, 0, SOURCES)
    dmt_b = ident.stage_ids("tiny_llama", st.dmt(F(1, 16)), SETTINGS, 0, SOURCES)
    mixed = ident.stage_ids("tiny_llama", st.mixed_sequential(), SETTINGS, 0, SOURCES)
    assert dmt_a[0] == dmt_b[0] == mixed[0]
    assert len({dmt_a[1], dmt_b[1], mixed[1]}) == 3
    # The second stage's id depends on its parent: same recipe after another first stage differs.
    after_code = ident.stage_ids("tiny_llama", st.single("code") + st.single("general"),
                                 SETTINGS, 0, SOURCES)
    assert after_code[1] != mixed[1]
    assert ident.chain_id("tiny_llama", dmt_a) != ident.chain_id("tiny_llama", dmt_b)
    assert ident.chain_id("tiny_llama", dmt_a) == ident.chain_id("tiny_llama", list(dmt_a))


def test_settings_objects_use_their_fingerprint():
    class Settings:
        def fingerprint_dict(self):
            return dict(SETTINGS)

    assert sid(settings=Settings()) == sid()
    assert ident.stage_ids("m", st.dmt(F(1, 4)), [SETTINGS, {**SETTINGS, "epochs": 1}], 0,
                           SOURCES)[1] != ident.stage_ids("m", st.dmt(F(1, 4)), SETTINGS, 0,
                                                          SOURCES)[1]
    with pytest.raises(ValueError):
        sid(settings=None)
