"""GPU hours planned against used per question, in a dry run after a partial sweep."""

from __future__ import annotations

import json

import pytest

from core.storage import Storage
from sweep import cli
from sweep.planning.plan import build_plan
from sweep.planning.resolution import resolve_preset
from sweep.reporting.budget import budget, planned_by_run
from sweep.reporting.results import Measurement, RunCost, rows_for, write_result
from sweep.study import grid, presets


def test_dry_run_after_a_partial_sweep_shows_planned_used_and_left(tmp_path, capsys):
    # Resolved offline, as the dry run resolves it (sweep/planning/resolution.py): the same run ids.
    preset = resolve_preset(presets.paper(), offline=True)
    plan = build_plan(grid.build_grid("rq2", ["llama_7b"]), preset)
    planned = planned_by_run(plan)
    assert sum(planned.values()) == pytest.approx(plan.gpu_hours)  # shared stages count once
    done = next(p for p in plan.runs if p.run.question == "rq1" and p.stage_ids)
    storage = Storage(tmp_path / "runs")
    write_result(storage, done.run_id, rows_for(
        done.run, done.run_id, "paper", done.stage_ids,
        [Measurement("gsm8k/flexible", 40.0, n=1319, ci_low=37.4, ci_high=42.7)],
        RunCost(tokens_trained=1, tokens_in_stages=1, wall_hours=3.0, gpu_hours=17.5)))

    rows = budget(plan, storage)
    rq1 = rows["rq1"]
    assert rq1["finished"] == 1 and rq1["used_gpu_hours"] == 17.5
    assert rq1["left_gpu_hours"] == pytest.approx(rq1["planned_gpu_hours"] - planned[done.run_id],
                                                  abs=1e-2)
    assert rows["rq2"]["finished"] == 0 and rows["rq2"]["used_gpu_hours"] == 0

    cli.main("rq2", ["--preset", "paper", "--models", "llama_7b", "--storage",
                     str(tmp_path / "runs"), "--dry-run", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["budget"] == rows
    cli.main("rq2", ["--preset", "paper", "--models", "llama_7b", "--storage",
                     str(tmp_path / "runs"), "--dry-run"])
    assert "rq1      1/" in capsys.readouterr().out


def test_dry_run_before_any_result_has_no_budget(tmp_path, capsys):
    cli.main("rq2", ["--preset", "paper", "--models", "llama_7b", "--storage",
                     str(tmp_path / "empty"), "--dry-run", "--json"])
    assert "budget" not in json.loads(capsys.readouterr().out)


def test_the_report_sets_the_stored_plan_beside_what_runs_used(tmp_path):
    """A sweep stores its plan's hours when it starts; the report reads them back with the
    results: planned, used, used/planned of the finished runs, and what is left."""
    from sweep.reporting.budget import write_planned
    from sweep.reporting.document import build_report, report_json
    from sweep.reporting.result_set import ResultSet

    preset = presets.paper()
    plan = build_plan(grid.build_grid("rq2", ["llama_7b"]), preset)
    storage = Storage(tmp_path / "runs")
    write_planned(storage, plan, "rq2-paper-test")
    done = next(p for p in plan.runs if p.run.question == "rq2" and p.stage_ids)
    planned = planned_by_run(plan)[done.run_id]
    write_result(storage, done.run_id, rows_for(
        done.run, done.run_id, "paper", done.stage_ids,
        [Measurement("gsm8k/flexible", 40.0, n=1319, ci_low=37.4, ci_high=42.7)],
        RunCost(tokens_trained=1, tokens_in_stages=1, wall_hours=3.0, gpu_hours=2 * planned)))

    text, tested, cells, _ = build_report(ResultSet.from_storage(storage))
    assert report_json(cells, tested)["gpu_hours"] == budget(plan, storage)
    rq2 = report_json(cells, tested)["gpu_hours"]["rq2"]
    assert rq2["finished"] == 1 and rq2["used_gpu_hours"] == pytest.approx(2 * planned, abs=1e-3)
    line = next(ln for ln in text.splitlines() if ln.startswith("| rq2 |"))
    runs = sum(p.run.question == "rq2" for p in plan.runs)
    assert line.startswith(f"| rq2 | 1/{runs} |") and "| 2.00 |" in line


def test_a_cpu_sweep_plans_no_gpu_hours_and_the_report_says_nothing_of_them(tmp_path):
    from sweep.reporting.budget import stored_budget, write_planned

    plan = build_plan(grid.build_grid("rq2", ["tiny_llama"]), presets.smoke())
    storage = Storage(tmp_path / "runs")
    write_planned(storage, plan, "rq2-smoke-test")
    assert stored_budget(storage) == {}
