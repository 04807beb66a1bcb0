"""`python -m trainers.data`: the printed and saved report, built-in corpora, --strict."""

from __future__ import annotations

import json

import pytest
from paths import ASSETS

from trainers.data import command as data


@pytest.fixture()
def cache(tmp_path):
    """Where the built-in corpora go (DMT_CACHE stays: it holds the converted tokenizer)."""
    return tmp_path / "corpora"


def test_report_on_builtin_corpora_is_printed_and_saved(ray_local, cache, tmp_path, capsys):
    argv = ["--recipe", "math=1/64,general_nocm=#5", "--tokenizer", "tiny_llama",
            "--micro-batch", "4", "--out", str(tmp_path / "out"), "--json",
            "--corpora-dir", str(cache)]
    assert data.main(argv) == 0
    out = capsys.readouterr().out
    printed = json.loads(out[out.index("{\n"):])  # other modules may log a line first
    saved = json.loads((tmp_path / "out" / "data_report.json").read_text())
    assert printed == saved
    sources = {s["name"]: s for s in saved["report"]["sources"]}
    assert sources["math"]["selected"] == 31 and sources["general_nocm"]["selected"] == 5
    nocm = sources["general_nocm"]
    assert nocm["read"] == nocm["kept"] + nocm["rejects"]["total"] and nocm["rejects"]["total"] > 0
    assert set(nocm["rejects"]["counts"]) <= {"tag:code", "tag:math", "tag:code+math"}
    padding = saved["padding"]
    assert padding["padding_fraction_packed"] == 0.0 < padding["padding_fraction_padded"] < 1
    assert padding["packed_cells"] == padding["tokens"] == saved["report"]["tokens"]["total"]
    assert len(list(cache.glob("corpora/*/metadata.json"))) == 1


def test_text_report_names_rejects_by_reason_and_line(ray_local, cache, capsys):
    corrupt = ASSETS / "data_corrupt_gsm8k.jsonl"
    argv = ["--recipe", "gsm8k=1", "--source", f"gsm8k={corrupt}", "--tokenizer", "tiny_llama",
            "--corpora-dir", str(cache)]
    assert data.main(argv) == 0
    out = capsys.readouterr().out
    assert "read 8  kept 3  rejected 5  selected 3" in out
    assert f"missing field: answer  (e.g. {corrupt}:3)" in out
    assert "padding (micro-batch 8, epoch 0): padded" in out
    assert not cache.exists()  # no built-in name in the recipe: nothing written


def test_strict_exits_naming_the_first_bad_line(ray_local, cache, capsys):
    corrupt = ASSETS / "data_corrupt_gsm8k.jsonl"
    argv = ["--recipe", "gsm8k=1", "--source", f"gsm8k={corrupt}", "--strict"]
    assert data.main(argv) == 2
    assert f"error: {corrupt}:2: malformed JSON" in capsys.readouterr().err


def test_bad_arguments_are_refused(cache, capsys):
    with pytest.raises(SystemExit):
        data.main(["--recipe", "x=1", "--source", "x"])
    assert "'x': expected NAME=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown --format"):
        data.main(["--recipe", "x=1", "--source", "x=a.jsonl", "--format", "x=alpaca"])
    with pytest.raises(SystemExit, match="give --source"):
        data.main(["--recipe", "nosuch=1", "--corpora-dir", str(cache)])
