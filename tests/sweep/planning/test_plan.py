"""Dry runs: the paper preset's plans match GRID.md run for run, and stages are shared exactly
where GRID.md says they repeat, within and across questions."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction as F

import pytest

from sweep import cli
from sweep.planning import lengths
from sweep.planning.plan import PAPER_SIZES, build_plan, plan_json
from sweep.study import grid, presets

MODELS = ("llama_7b", "llama_13b", "llama_33b")
# Runs per model size, the base model included (rq2: 5 mixes + the 15 singles they compare to)
PER_MODEL = {"rq1": 15 + 1, "rq2": 5 + 15 + 1, "rq3": 15 + 1, "rq4": 11 + 1, "ablation": 5 + 1}


def _dry_run(question: str, *extra: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", f"sweep.{question}", "--preset", "paper", "--dry-run", "--json",
         *extra], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def test_cli_plans_match_grid_one_to_one():
    for question, n in PER_MODEL.items():
        plan = _dry_run(question)
        assert len(plan["run_list"]) == 3 * n, question
        assert len({r["id"] for r in plan["run_list"]}) == len(plan["run_list"])
        for model in MODELS:
            runs = [r for r in plan["run_list"] if r["model"] == model]
            assert len(runs) == n
        expected = {(r.model, r.strategy, str(r.fraction) if r.fraction else None,
                     str(r.k) if r.k else None) for r in grid.build_grid(question, MODELS)}
        got = {(r["model"], r["strategy"], r["fraction"] and str(F(r["fraction"])),
                r["k"] and str(F(r["k"]))) for r in plan["run_list"]}
        assert got == expected
        assert plan["naive_stages"] >= plan["unique_stages"]
        assert plan["naive_tokens"] >= plan["shared_tokens"] > 0
        assert plan["gpu_hours"] > 0


def test_rq4_sharing_and_tokens():
    plan = _dry_run("rq4", "--models", "llama_7b")
    # 19 stages named, 13 distinct: code only = sequential's first; mixed sequential's first
    # stage = every DMT(k)'s first; and DMT(k)'s second stages differ by k.
    assert (plan["naive_stages"], plan["unique_stages"]) == (19, 13)
    runs = {(r["strategy"], r["k"]): r["stage_ids"] for r in plan["run_list"]}
    assert runs[("sequential", None)][0] == runs[("code only", None)][0]
    firsts = {ids[0] for (s, _), ids in runs.items() if s in ("DMT", "mixed sequential")}
    assert len(firsts) == 1
    # multi-task: 3 epochs x all samples x the stated mean tokens
    multi = plan["stages"][runs[("multi-task", None)][0]]
    hists = lengths.histograms("paper")
    want = 3 * sum(PAPER_SIZES[s] * lengths.mean_length(hists[s], 2048)
                   for s in ("math", "code", "general"))
    assert multi["tokens"] == round(want) and multi["samples"] == 216_224
    # packing on (the paper preset's default): the trainer computes the real tokens only
    assert multi["processed_tokens"] == multi["tokens"]
    padded = _dry_run("rq4", "--models", "llama_7b", "--preset", "paper_padded")
    padded_multi = padded["stages"][next(r["stage_ids"][0] for r in padded["run_list"]
                                         if r["strategy"] == "multi-task")]
    assert padded_multi["processed_tokens"] > padded_multi["tokens"]  # micro-batches of 2


def test_sharing_across_questions():
    preset = presets.paper()
    runs = [r for q in ("rq1", "rq2", "rq3", "rq4") for r in grid.build_grid(q, ["llama_7b"])]
    plan = build_plan(runs, preset)
    ids = {(p.run.question, p.run.strategy, p.run.fraction, p.run.k): p.stage_ids
           for p in plan.runs}
    one = F(1)
    multi = ids[("rq4", "multi-task", None, None)]
    assert ids[("rq2", "mix", one, None)] == multi
    assert ids[("rq3", "fixed general", one, None)] == multi
    assert ids[("rq3", "fixed specialized", one, None)] == multi
    assert ids[("rq4", "math only", None, None)] == ids[("rq1", "math only", one, None)]
    assert ids[("rq4", "general only", None, None)] == ids[("rq1", "general only", one, None)]
    assert ids[("rq4", "sequential", None, None)][0] == ids[("rq1", "code only", one, None)][0]
    assert ids[("rq3", "fixed general", F(1, 64), None)] != ids[("rq2", "mix", F(1, 64), None)]
    # Two coincidences GRID.md does not list, which hashing finds by itself:
    assert ids[("rq3", "fixed 1/64 general", F(1, 64), None)] == ids[("rq2", "mix", F(1, 64), None)]
    assert (ids[("rq3", "fixed 1/64 general", one, None)]
            == ids[("rq3", "fixed specialized", F(1, 64), None)])
    # Named: 15 + 5 + 15 + 19. Distinct: rq1 15; rq2 adds 5; rq3 adds 15 - 4 (f=1 of (a) and
    # (b) = mix@1, (c)@1/64 = mix@1/64, (c)@1 = (b)@1/64); rq4 adds its 13 less the three
    # singles (rq1 @1) and multi-task (mix@1): 9.
    assert plan.naive_stages == 54
    assert len(plan.stages) == 15 + 5 + 11 + 9
    js = plan_json(plan, preset)
    # Runs named twice (rq2's singles are rq1's, one base model) are planned once.
    assert js["unique_stages"] == len(plan.stages) and js["runs"] == len(js["run_list"]) == 1 + 15 + 5 + 15 + 11


def test_gpu_hours_formula_and_cpu_presets():
    preset = presets.paper()
    plan = build_plan(grid.build_grid("rq1", ["llama_13b"], fractions=(F(1),)), preset)
    stage = next(s for s in plan.stages.values() if s.recipe_text == "code=1")
    want = 6 * 13_016_000_000 * stage.processed_tokens / (312e12 * 0.4) / 3600
    assert abs(stage.gpu_hours - want) < 1e-9
    assert presets.train_settings(preset, "llama_33b").micro_batch == 1  # 16 GPUs, batch 16
    assert presets.train_settings(preset, "llama_7b").micro_batch == 2


def test_gpu_hours_from_a_measured_gpu_check(tmp_path, capsys):
    """--mfu-from takes a gpu_check summary's MFU, measured peak and device; --mfu an MFU on the
    A100 peak; neither keeps the assumed 0.40; a CPU check's summary (no MFU) is refused."""
    from sweep.planning.plan import Throughput, throughput_from

    summary = {"device": "NVIDIA H200", "cuda": True, "mfu": 0.3, "peak_flops_measured": 800e12,
               "mfu_source": "throughput/llama_1b/micro_batch 16"}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    measured = throughput_from(mfu_from=str(path))
    assert (measured.mfu, measured.peak_flops) == (0.3, 800e12) and "H200" in measured.device
    assert throughput_from() == Throughput() and throughput_from(mfu=0.35).mfu == 0.35
    preset = presets.paper()
    runs = grid.build_grid("rq1", ["llama_13b"], fractions=(F(1),))
    stage = next(s for s in build_plan(runs, preset, measured).stages.values()
                 if s.recipe_text == "code=1")
    assert abs(stage.gpu_hours - 6 * 13_016_000_000 * stage.processed_tokens
               / (800e12 * 0.3) / 3600) < 1e-9
    cli.main("rq1", ["--preset", "paper", "--models", "llama_13b", "--dry-run", "--json",
                     "--mfu-from", str(path)])
    js = json.loads(capsys.readouterr().out)
    assert js["assumptions"]["mfu"] == 0.3 and "H200" in js["assumptions"]["device"]
    assert js["assumptions"]["mfu_source"].startswith(str(path))
    cli.main("rq1", ["--preset", "paper", "--models", "llama_13b", "--dry-run", "--mfu", "0.35"])
    text = capsys.readouterr().out
    assert "MFU 35.0%, --mfu" in text and "A100" in text
    cli.main("rq1", ["--preset", "paper", "--models", "llama_13b", "--dry-run"])
    assert "MFU 40.0%, assumed" in capsys.readouterr().out
    path.write_text(json.dumps({**summary, "device": "cpu", "cuda": False, "mfu": None}))
    with pytest.raises(SystemExit, match="no GPU MFU"):
        cli.main("rq1", ["--preset", "paper", "--dry-run", "--mfu-from", str(path)])


def test_rq3_amount_flag_gives_the_papers_setups_on_the_local_preset(tmp_path, capsys):
    """rq3 on the local preset holds its parts at 1/4 ("fixed 1/4 general"); --amount 1 asks
    for the paper's setups by their own names."""
    common = ["--preset", "local", "--fractions", "1/16", "--storage", str(tmp_path),
              "--dry-run", "--json"]
    cli.main("rq3", common)
    local = {r["strategy"] for r in json.loads(capsys.readouterr().out)["run_list"]}
    cli.main("rq3", common + ["--amount", "1"])
    paper = {r["strategy"] for r in json.loads(capsys.readouterr().out)["run_list"]}
    assert local - {"base"} == {"fixed 1/4 general", "fixed 1/4 specialized", "fixed 1/64 general"}
    assert paper - {"base"} == {"fixed general", "fixed specialized", "fixed 1/64 general"}
