"""Your sources, groups and abilities (sweep/study/choices.py): one rule for every command.

Naming only the paper's sources moves them (and nothing else is renamed); any other name makes
the named sources the question's; groups a question needs and cannot infer are errors naming
the flag; reserved and malformed names are refused; the dry run counts a user's file."""

from __future__ import annotations

import json

import pytest

from sweep import cli
from sweep.planning.plan import run_stage_ids, sources_fingerprint
from sweep.study import choices, grid
from sweep.study.presets import get_preset


def _write_messages(path, n, bad=0):
    rows = [{"messages": [{"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i} " * 20}]}
            for i in range(n)]
    rows += [{"messages": [{"role": "user", "content": "no reply"}]}] * bad
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_naming_a_paper_source_moves_it_and_renames_only_its_stages(tmp_path):
    local = get_preset("local")
    moved = choices.with_sources(local, {"math": _write_messages(tmp_path / "m.jsonl", 5)})
    assert moved.source_names is None and moved.builtin_corpora
    assert [s.name for s in moved.sources] == ["math"]
    runs = {r.strategy: r for r in grid.build_grid("rq1", local.models, (grid.ONE,))}
    assert run_stage_ids(runs["code only"], moved) == run_stage_ids(runs["code only"], local)
    assert run_stage_ids(runs["math only"], moved) != run_stage_ids(runs["math only"], local)
    # builtin:NAME of a paper source is where it already is: nothing changes
    assert choices.with_sources(local, {"code": "builtin:code"}) == local


def test_other_names_make_the_named_sources_the_questions(tmp_path):
    files = {n: _write_messages(tmp_path / f"{n}.jsonl", 4) for n in ("legal", "chat")}
    preset = choices.with_sources(get_preset("local"), {**files, "tools": "builtin:tools"})
    assert preset.source_names == ("legal", "chat", "tools")
    assert dict(preset.corpus_sizes)["tools"] > 0  # the opt-in corpus is written when named
    fingerprint = sources_fingerprint(preset)
    assert fingerprint["tools"]["location"] == "builtin:tools"
    assert fingerprint["legal"]["location"] == files["legal"]
    # the paper's math stays identified as before: its stages keep their ids
    assert fingerprint["math"] == sources_fingerprint(get_preset("local"))["math"]
    spec = choices.grid_spec(preset, "rq2")
    runs = grid.build_grid("rq2", preset.models, (grid.ONE,), spec=spec)
    assert [r.strategy for r in runs] == ["base", "legal only", "chat only", "tools only", "mix"]
    assert [s for s, _ in runs[-1].stages[0].recipe] == ["chat", "legal", "tools"]
    mixed = grid.build_grid("rq2", preset.models, (grid.ONE,),
                            spec=choices.grid_spec(preset, "rq2", mix=("legal", "tools")))
    assert [s for s, _ in mixed[-1].stages[0].recipe] == ["legal", "tools"]


def test_a_group_the_question_needs_is_an_error_naming_its_flag(tmp_path):
    files = {n: _write_messages(tmp_path / f"{n}.jsonl", 4) for n in ("a", "b", "c")}
    preset = choices.with_sources(get_preset("local"), files)
    with pytest.raises(choices.ChoiceError, match="rq3 needs --specialized"):
        choices.grid_spec(preset, "rq3")
    with pytest.raises(choices.ChoiceError, match="rq4 needs --order"):
        choices.grid_spec(preset, "rq4", specialized=("a", "b"), general="c")
    spec = choices.grid_spec(preset, "rq4", specialized=("a", "b"), general="c",
                             order=("c", "a", "b"))
    runs = grid.build_grid("rq4", preset.models, ks=(grid.ONE,), spec=spec)
    dmt = next(r for r in runs if r.strategy == "DMT")
    assert [[s for s, _ in st.recipe] for st in dmt.stages] == [["a", "b"], ["a", "b", "c"]]
    with pytest.raises(choices.ChoiceError, match="--mix"):
        choices.grid_spec(preset, "rq2", mix=("a", "zzz"))
    with pytest.raises(choices.ChoiceError, match="ablation studies the paper's"):
        choices.grid_spec(preset, "ablation")


@pytest.mark.parametrize(("locations", "message"), [
    ({"general_test": "x.json"}, "reserved"),
    ({"Tools": "x.json"}, "lower-case"),
    ({"mine": "builtin:math"}, "keeps its own name"),
    ({"tools2": "builtin:tools2"}, "no built-in corpus"),
])
def test_bad_source_names_are_refused(locations, message):
    with pytest.raises(choices.ChoiceError, match=message):
        choices.with_sources(get_preset("local"), locations)


def test_the_paper_preset_has_no_builtin_corpora():
    with pytest.raises(choices.ChoiceError, match="no built-in corpora"):
        choices.with_sources(get_preset("paper"), {"tools": "builtin:tools"})


def test_evals_and_limits():
    preset = choices.with_evals(get_preset("local"), ("gsm8k", "lm-eval:dmt_tool_calls"),
                                choices.parse_limit("lm-eval:dmt_tool_calls=50"))
    assert preset.evaluation.limits_by_name() == {"gsm8k": 100, "lm-eval:dmt_tool_calls": 50}
    with pytest.raises(choices.ChoiceError, match="not among --evals"):
        choices.with_evals(get_preset("local"), ("gsm8k",), {"humaneval": 3})
    with pytest.raises(choices.ChoiceError, match="--limit"):
        choices.parse_limit("gsm8k=ten")


def test_dry_run_counts_a_users_file_and_refuses_an_unknown_task(tmp_path, capsys):
    a = _write_messages(tmp_path / "a.jsonl", 30, bad=2)
    b = _write_messages(tmp_path / "b.jsonl", 12)
    assert cli.main("rq2", ["--preset", "local", "--source", f"a={a}", "--source", f"b={b}",
                            "--evals", "gsm8k,general_loss", "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    sources = plan["assumptions"]["sources"]
    assert sources["samples"]["a"] == 30 and sources["samples"]["b"] == 12  # 2 bad rows out
    assert sources["how_known"]["a"] == "scanned"
    assert [r["strategy"] for r in plan["run_list"]] == ["base", "a only", "b only", "mix"]
    mix = next(s for s in plan["stages"].values() if s["recipe"] == "a=1/4,b=1/4")
    assert mix["samples"] == 8 + 3 and mix["tokens"] > 0
    with pytest.raises(SystemExit, match="unknown"):
        cli.main("rq2", ["--preset", "local", "--evals", "gsm8k,mmlu_pro", "--dry-run"])
    with pytest.raises(SystemExit, match="not found among lm-eval's tasks"):
        cli.main("rq2", ["--preset", "local", "--evals", "lm-eval:no_such_task_xyz"])
