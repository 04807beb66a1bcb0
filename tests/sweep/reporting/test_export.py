"""One export, one import: `--export DIR` writes runs.csv (every column of the results table,
amounts split per source, stages, proxy) and items.csv; `--results DIR` reads it back, or a
minimal table written elsewhere; the report from an export equals the report from its
storage."""

from __future__ import annotations

import csv
import json

import pytest
from synthetic import write_sweep

from sweep.report import main
from sweep.reporting.document import build_report
from sweep.reporting.result_set import ResultSet
from sweep.reporting.results import SCHEMA


def test_the_report_from_an_export_equals_the_report_from_its_storage(tmp_path, capsys):
    write_sweep(tmp_path / "runs", seeds=2)
    main(["--storage", str(tmp_path / "runs"), "--export", str(tmp_path / "export")])
    assert "exported 9 runs" in capsys.readouterr().out  # base, (3 singles + mix) x 2 seeds
    stored = build_report(ResultSet.from_storage(tmp_path / "runs"))[0]
    exported = build_report(ResultSet.from_export(tmp_path / "export"))[0]
    assert exported == stored and "### RQ2" in stored
    main(["--results", str(tmp_path / "export"), "--json"])
    from_export = json.loads(capsys.readouterr().out)
    main(["--storage", str(tmp_path / "runs"), "--json"])
    assert json.loads(capsys.readouterr().out) == from_export


def test_runs_csv_has_every_column_amounts_per_source_stages_and_proxy(tmp_path):
    write_sweep(tmp_path / "runs")
    ResultSet.from_storage(tmp_path / "runs").export(tmp_path / "export")
    with (tmp_path / "export" / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    columns = set(rows[0])
    assert set(SCHEMA.names) - {"amounts"} <= columns
    assert {"amount_math", "amount_code", "amount_general"} <= columns
    mix = next(r for r in rows if r["strategy"] == "mix")
    assert (mix["amount_math"], mix["amount_code"], mix["amount_general"]) == ("1/4",) * 3
    single = next(r for r in rows if r["strategy"] == "math only")
    assert single["amount_code"] == "" and single["stages"] == "math=1/4"
    assert {r["proxy"] for r in rows} == {"full"}
    with (tmp_path / "export" / "items.csv").open() as f:
        items = list(csv.DictReader(f))
    assert set(items[0]) == {"run_id", "metric", "item", "value"}
    assert len(items) == sum(1 for _ in items) > 500


def test_a_minimal_table_from_elsewhere_is_read_and_its_intervals_recomputed(tmp_path):
    (tmp_path / "runs.csv").write_text(
        "run_id,question,model,strategy,fraction,k,seed,amount_math,metric,value,n\n"
        "b,base,m,base,,,0,,gsm8k/flexible,25.0,4\n"
        "a,rq1,m,math only,1/4,,0,1/4,gsm8k/flexible,75.0,4\n")
    (tmp_path / "items.csv").write_text(
        "run_id,metric,item,value\n"
        + "".join(f"b,gsm8k/flexible,q{i},{float(i == 0)}\n" for i in range(4))
        + "".join(f"a,gsm8k/flexible,q{i},{float(i != 0)}\n" for i in range(4)))
    results = ResultSet.from_export(tmp_path)
    math = next(r for r in results.rows if r["run_id"] == "a")
    assert math["kind"] == "binary" and math["amounts"] == "math=1/4" and math["proxy"] == "full"
    assert math["ci_low"] < 75.0 < math["ci_high"] and math["n"] == 4  # Wilson, recomputed
    text = build_report(results)[0]
    assert "math only, f=1/4 | 75.0 [" in text


def test_bad_exports_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="runs.csv: no such file"):
        ResultSet.from_export(tmp_path)
    (tmp_path / "runs.csv").write_text("run_id,metric\nx,gsm8k/flexible\n")
    (tmp_path / "items.csv").write_text("run_id,metric,item,value\nx,gsm8k/flexible,q,nan\n")
    with pytest.raises(ValueError, match=r"items.csv:2: run x, gsm8k/flexible, item 'q'"):
        ResultSet.from_export(tmp_path)
    (tmp_path / "items.csv").write_text("run_id,metric,item,value\n")
    with pytest.raises(ValueError, match="required columns missing"):
        ResultSet.from_export(tmp_path)
