"""The dry run's figures: every command prints the same keys; `sweep.all` shares stages across
questions; processed tokens follow the padded micro-batches (checked by hand on a tiny
histogram); the histogram script is reproducible on a shipped asset."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from paths import ASSETS

from scripts import length_histograms as lh
from sweep import cli
from sweep.planning import lengths
from sweep.planning.plan import JUDGE_TOKENS_PER_CALL
from sweep.study import grid
from trainers.data.corpora import OPT_IN_FILES

KEYS = ("runs", "run_list", "unique_stages", "naive_stages", "naive_tokens", "shared_tokens",
        "processed_tokens", "gpu_hours", "judge_calls", "judge_tokens", "assumptions")


@pytest.fixture(autouse=True)
def _no_environment_overrides(monkeypatch):
    for name in ("DMT_GSM8K_RFT", "DMT_JUDGE_URL", "DMT_JUDGE_MODEL"):
        monkeypatch.delenv(name, raising=False)


def dry_run(question: str, capsys, *args: str) -> dict:
    assert cli.main(question, ["--dry-run", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("preset", ["paper", "local"])
def test_every_command_prints_the_figures(preset, capsys):
    for question in (*grid.QUESTIONS, "all"):
        plan = dry_run(question, capsys, "--preset", preset)
        assert all(k in plan for k in KEYS), (question, sorted(set(KEYS) - set(plan)))
        assert plan["runs"] == len(plan["run_list"]) > 0
        assert plan["processed_tokens"] >= plan["shared_tokens"] > 0, question
        if preset == "local":  # packing: no padding to pay for
            assert plan["processed_tokens"] == plan["shared_tokens"]
            assert plan["gpu_hours"] is None and plan["judge_calls"] == 0
        else:
            assert plan["gpu_hours"] > 0


def test_all_shares_stages_across_questions(capsys):
    models = ["--preset", "paper", "--models", "llama_7b"]
    each = {q: dry_run(q, capsys, *models) for q in grid.ALL_QUESTIONS}
    plan = dry_run("all", capsys, *models)
    ids = {sid for r in plan["run_list"] for sid in r["stage_ids"]}
    assert plan["unique_stages"] == len(ids) == len(plan["stages"])
    assert plan["unique_stages"] < sum(p["unique_stages"] for p in each.values())
    # each run once: rq2's 15 singles are rq1's, one base run for all questions
    runs = {r["id"] for p in each.values() for r in p["run_list"]}
    assert plan["runs"] == len(runs) == 1 + 15 + 5 + 15 + 11 + 5
    assert ids == {sid for p in each.values() for r in p["run_list"] for sid in r["stage_ids"]}
    # every stage a question trains is one of sweep.all's, with the same token figures
    for p in each.values():
        for sid, stage in p["stages"].items():
            assert plan["stages"][sid] == stage
    # the paper judges every run: 80 questions x 2 turns x 3 repeats
    assert plan["judge"]["calls_per_run"] == 480
    assert plan["judge_calls"] == 480 * plan["runs"]
    assert plan["judge_tokens"] == plan["judge_calls"] * JUDGE_TOKENS_PER_CALL
    with_tsne = dry_run("all", capsys, *models, "--tsne")
    assert with_tsne["runs"] == plan["runs"] + 2
    assert with_tsne["judge_calls"] == plan["judge_calls"]  # t-SNE runs are not judged


def test_all_is_a_command():
    out = subprocess.run([sys.executable, "-m", "sweep.all", "--preset", "smoke", "--dry-run"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert "unique_stages" in out and "processed_tokens" in out and "judge_calls 0" in out


def test_padded_expectation_by_hand():
    hists = {"a": {1: 1, 3: 1}, "b": {5: 2}}
    # Two rows from {1, 3}: the longest is 3 unless both are 1 (1/4): 3 x 3/4 + 1/4 = 2.5
    pmf = lengths.mixture({"a": 10}, hists, 2048)
    assert lengths.expected_longest(pmf, 2) == pytest.approx(2.5)
    # 5 rows, micro-batch 2: two full micro-batches (2 x 2 x 2.5) and one row (mean 2)
    assert lengths.epoch_tokens({"a": 5}, hists, 2048, 2, False) == pytest.approx((10, 12))
    assert lengths.epoch_tokens({"a": 5}, hists, 2048, 2, True) == pytest.approx((10, 10))
    # Capped at max_len 2: rows {1, 2}; longest of two = 2 x 3/4 + 1 x 1/4
    assert lengths.expected_longest(lengths.mixture({"a": 1}, hists, 2), 2) == 1.75
    # Mixed half and half with b: P(both rows from a) = 1/4, then 2.5 as above; else 5
    pmf = lengths.mixture({"a": 4, "b": 4}, hists, 2048)
    assert lengths.expected_longest(pmf, 2) == pytest.approx(0.25 * 2.5 + 0.75 * 5)
    real, processed = lengths.epoch_tokens({"a": 4, "b": 4}, hists, 2048, 2, False)
    assert real == 4 * 2 + 4 * 5 and processed == pytest.approx(8 * (0.25 * 2.5 + 0.75 * 5))


def test_histogram_script_is_reproducible_on_an_asset():
    from core.model import load_tokenizer
    from trainers.data.source_spec import SourceSpec

    tokenizer = load_tokenizer(lh.TOKENIZER)
    spec = SourceSpec("math", str(ASSETS / "eval_gsm8k.jsonl"), "gsm8k")
    first = lh.length_histogram(spec, tokenizer)
    assert first == lh.length_histogram(spec, tokenizer)
    n = sum(1 for line in (ASSETS / "eval_gsm8k.jsonl").read_text().splitlines() if line.strip())
    assert first["records"] == first["samples"] == sum(first["counts"].values()) == n
    assert first["truncated"] == 0 and not first["read_rejects"]
    longest = max(map(int, first["counts"]))
    short = lh.length_histogram(spec, tokenizer, max_len=longest - 1)
    assert short["truncated"] >= 1 and max(map(int, short["counts"])) == longest - 1
    assert short["samples"] + sum(short["format_rejects"].values()) == n


def test_committed_histograms_cover_every_source():
    data = json.loads(lengths.HISTOGRAMS.read_text())
    assert "SmolLM2" in data["assumption"] and "GSM8K" in data["assumption"]
    paper = {"math", "code", "general", "general_nocm"}
    for group, names in (("paper", paper), ("builtin", paper | set(OPT_IN_FILES))):
        assert set(data[group]) == names
        for h in data[group].values():
            assert sum(h["counts"].values()) == h["samples"] > 0
            assert max(map(int, h["counts"])) <= data["provenance"]["max_len"]


def test_committed_histograms_match_the_shared_files(shared_data):
    """The inputs' checksums in the JSON are those of ../shared/data (skips without it)."""
    inputs = json.loads(lengths.HISTOGRAMS.read_text())["provenance"]["inputs"]
    for item in inputs.values():
        assert lh.sha256(shared_data / item["file"]) == item["sha256"], item["file"]
