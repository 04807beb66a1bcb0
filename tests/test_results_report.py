"""Results are one parquet dataset of per-run files written atomically; the report puts the
paper's number beside each measured cell and draws the figures."""

from __future__ import annotations

from fractions import Fraction as F

import pyarrow.parquet as pq
import pytest

from sweep import grid
from sweep.report import write_report
from sweep.results import (
    SCHEMA,
    Measurement,
    RunCost,
    has_result,
    read_results,
    rows_for,
    write_result,
)

COST = RunCost(tokens_trained=1000, tokens_in_stages=1500, wall_hours=0.1, gpu_hours=0.8)


def _run(question, strategy, model="llama_7b", **point):
    for run in grid.build_grid(question, [model]):
        if run.strategy == strategy and all(getattr(run, k) == v for k, v in point.items()):
            return run
    raise LookupError((question, strategy, point))


def _measure(gsm, he, mt, judged=True):
    return [Measurement("gsm8k/strict", gsm - 1, n=1319), Measurement("gsm8k/flexible", gsm),
            Measurement("humaneval/pass@1", he, n=164),
            Measurement("mtbench/mean", mt if judged else None, judged=judged)]


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


def test_report_tables_and_figures(tmp_path):
    store = tmp_path / "store"
    dmt = _run("rq4", "DMT", k=F(1, 256))
    write_result(store, "d", rows_for(dmt, "d", "paper", ["s"], _measure(41.9, 17.0, 0, False),
                                      COST))
    for f, v in ((F(1), 10.0), (F(1, 4), 5.0)):
        run = _run("rq2", "mix", model="tiny_llama", fraction=f)
        write_result(store, f"m{v}", rows_for(run, f"m{v}", "smoke", ["s"],
                                              _measure(v, v, v), COST))
    out = write_report(store, tmp_path / "report")
    text = (out / "report.md").read_text()
    table1 = text.split("### Table 1")[1].split("###")[0]
    dmt_line = next(line for line in table1.splitlines() if line.startswith("| DMT"))
    assert "41.9 (paper 41.92)" in dmt_line and "17.0 (paper 17.68)" in dmt_line
    assert "not judged (paper 6.08)" in dmt_line
    assert "— (paper 46.47)" in dmt_line  # 13B not run: the paper's number, no measurement
    mix1 = next(line for line in text.splitlines() if line.startswith("| Mix (f=1)"))
    assert "10.0" in mix1 and "(paper 47.53)" in mix1
    for name in ("fig2_rq1_single_source", "fig3_rq2_mixed_vs_single", "fig4_rq3_ratio_setups",
                 "fig6_ablation", "fig8_dmt_k"):
        assert (out / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
