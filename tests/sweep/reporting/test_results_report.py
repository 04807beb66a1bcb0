"""Results are one parquet dataset of per-run files written atomically; the report puts the
paper's number beside each measured cell and draws the figures."""

from __future__ import annotations

from fractions import Fraction as F

import pyarrow.parquet as pq
import pytest

from sweep.reporting.results import (
    SCHEMA,
    Measurement,
    RunCost,
    has_result,
    read_results,
    rows_for,
    write_result,
)
from sweep.study import grid

COST = RunCost(tokens_trained=1000, tokens_in_stages=1500, wall_hours=0.1, gpu_hours=0.8)


def _run(question, strategy, model="llama_7b", **point):
    for run in grid.build_grid(question, [model]):
        if run.strategy == strategy and all(getattr(run, k) == v for k, v in point.items()):
            return run
    raise LookupError((question, strategy, point))


def _measure(gsm, he, mt, judged=True):
    return [Measurement("gsm8k/strict", gsm - 1, n=1319, ci_low=gsm - 3, ci_high=gsm + 1),
            Measurement("gsm8k/flexible", gsm, n=1319, ci_low=gsm - 2, ci_high=gsm + 2),
            Measurement("humaneval/pass@1", he, n=164, ci_low=he - 5, ci_high=he + 5),
            Measurement("mtbench/mean", mt if judged else None, judged=judged,
                        n=80 if judged else None)]


def test_rows_carry_the_paper_value_and_round_trip(tmp_path):
    dmt = _run("rq4", "DMT", k=F(1, 256))
    rows = rows_for(dmt, "rq4-dmt-1", "paper", ["s1", "s2"], _measure(41.9, 17.0, 6.1), COST)
    assert [r["paper_value"] for r in rows] == [41.92, 41.92, 17.68, 6.08]
    assert rows[0]["amounts"] == "code=1/256,general=1,math=1/256" and rows[0]["k"] == "1/256"
    math1 = _run("rq1", "math only", fraction=F(1, 4))
    rows1 = rows_for(math1, "rq1-m", "paper", ["s3"], _measure(40.0, 3.0, 2.0), COST)
    # A "Single" row of Table 2 is three runs: the math run carries only GSM8K's paper value.
    assert [r["paper_value"] for r in rows1] == [43.37, 43.37, None, None]
    assert not has_result(tmp_path, "rq4-dmt-1")
    write_result(tmp_path, "rq4-dmt-1", rows)
    write_result(tmp_path, "rq1-m", rows1)
    assert has_result(tmp_path, "rq4-dmt-1")
    table = read_results(tmp_path)
    assert table.schema == SCHEMA and table.num_rows == 8
    assert sorted(set(table.column("run_id").to_pylist())) == ["rq1-m", "rq4-dmt-1"]
    assert pq.read_table(tmp_path / "results" / "rq1-m.parquet").num_rows == 4


def test_half_written_files_are_ignored_and_empty_store_reads(tmp_path):
    assert read_results(tmp_path).num_rows == 0
    run = _run("rq2", "mix", fraction=F(1))
    write_result(tmp_path, "a", rows_for(run, "a", "smoke", ["x"], _measure(1, 2, 3), COST))
    # what a writer killed mid-write leaves behind: a dot-prefixed temp file
    (tmp_path / "results" / ".b.parquet.tmp-123").write_bytes(b"PAR1 half")
    assert read_results(tmp_path).num_rows == 4
    (tmp_path / "results" / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(ValueError, match="broken.parquet"):
        read_results(tmp_path)
    with pytest.raises(ValueError, match="no result rows"):
        write_result(tmp_path, "c", [])




def _judged_run(store, strategy, mt, snapshot):
    from dataclasses import replace

    run = _run("rq1", strategy, fraction=F(1))
    rows = rows_for(run, f"rq1-{strategy[:4]}", "paper", [],
                    [replace(m, judge_snapshot=snapshot, ci_low=mt - 1, ci_high=mt + 1)
                     if m.metric == "mtbench/mean" else m
                     for m in _measure(30, 10, mt)], COST)
    write_result(store, f"rq1-{strategy[:4]}", rows)
    return run


def test_report_never_mixes_judge_snapshots(tmp_path):
    from core.storage import Storage
    from sweep.reporting.document import build_report, report_json
    from sweep.reporting.result_set import ResultSet
    from sweep.reporting.tables import Cells, Spot

    for strategy, mt in (("math only", 5.25), ("code only", 5.75)):
        _judged_run(tmp_path, strategy, mt, "gpt-4-0613")
    _judged_run(tmp_path, "general only", 7.125, "gpt-4-0125-preview")
    rows = read_results(tmp_path).to_pylist()
    assert {r["judge_snapshot"] for r in rows if r["metric"] == "mtbench/mean"} == {
        "gpt-4-0613", "gpt-4-0125-preview"}
    cells = Cells(ResultSet.from_storage(tmp_path))
    assert cells.judge == "gpt-4-0613"
    assert [r["run_id"] for r in cells.set_aside["gpt-4-0125-preview"]] == ["rq1-gene"]
    general = Spot(("rq1",), "general only", F(1))
    assert cells.get("llama_7b", general, "mtbench/mean") is None  # not in any table
    assert cells.get("llama_7b", general, "gsm8k/flexible").value == 30  # other metrics stay
    text, tested, cells, _ = build_report(ResultSet.from_storage(Storage(tmp_path)))
    assert "MT-Bench judge: `gpt-4-0613`" in text
    assert "judged by more than one snapshot" in text
    aside = text[text.index("judged by more than one snapshot"):]
    assert "| gpt-4-0125-preview | rq1-gene | 7.125" in aside
    assert text.count("7.125") == 1  # only in the set-aside list, never in a table
    assert report_json(cells, tested)["set_aside_judges"]["gpt-4-0125-preview"][0][
        "judge_snapshot"] == "gpt-4-0125-preview"


def test_a_cell_with_one_judged_and_one_unjudged_seed_is_a_note_not_a_crash(tmp_path):
    """Seed 0 graded by the judge, seed 1 not (its judging failed): the cell shows the graded
    seed and says how many were judged."""
    from dataclasses import replace

    from sweep.reporting.document import build_report
    from sweep.reporting.result_set import ResultSet

    judged = _judged_run(tmp_path, "general only", 6.5, "gpt-4-0613")
    unjudged = replace(judged, seed=1)
    rows = [{**r, "value": None, "judged": False, "ci_low": None, "ci_high": None, "n": None}
            if r["metric"] == "mtbench/mean" else r
            for r in rows_for(unjudged, "rq1-gene-s1", "paper", [], _measure(30, 10, 6.0), COST)]
    write_result(tmp_path, "rq1-gene-s1", rows)
    text = build_report(ResultSet.from_storage(tmp_path))[0]
    line = next(ln for ln in text.splitlines() if ln.startswith("| general only, f=1/1"))
    assert "6.500 [5.500, 7.500] n=" in line and "(1 of 2 seeds judged)" in line
