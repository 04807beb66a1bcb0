"""Provenance: computed once per sweep (sweep.execution.provenance), carried on every result row, read back
as nulls from result files written before it existed, and shown once in the report."""

from __future__ import annotations

import json
from fractions import Fraction as F

import pyarrow as pa
import pyarrow.parquet as pq

from sweep.execution.provenance import (
    _without_credentials,
    code_version,
    library_versions,
    sweep_provenance,
)
from sweep.reporting.document import build_report, report_json
from sweep.reporting.result_set import ResultSet
from sweep.reporting.results import (
    SCHEMA,
    Measurement,
    RunCost,
    read_results,
    rows_for,
    write_result,
)
from sweep.study import grid, presets

COST = RunCost(tokens_trained=10, tokens_in_stages=10, wall_hours=0.1, gpu_hours=0.0)


def _mix(fraction=F(1, 64)):
    return next(r for r in grid.build_grid("rq2", ["smollm2_135m"], [fraction])
                if r.strategy == "mix")


def _rows(run_id, provenance):
    ms = [Measurement("gsm8k/flexible", 50.0, n=4, ci_low=10.0, ci_high=90.0)]
    return rows_for(_mix(), run_id, "smoke", ["s1"], ms, COST, provenance)


def test_sweep_provenance_names_the_commit_sources_and_libraries():
    prov = sweep_provenance(presets.smoke())
    version, dirty = code_version()
    assert prov["code_version"] == version and version.startswith("git:")
    assert len(version) == len("git:") + 40 and dirty in (True, False)
    assert set(prov["libraries"]) == {"torch", "transformers", "ray", "deepspeed"}
    assert prov["libraries"]["ray"].startswith("2.")
    assert library_versions(["no-such-package-dmt"]) == {"no-such-package-dmt": None}
    assert prov["sources"]["math"]["location"] == "builtin:math"
    assert prov["judge_snapshot"] is None
    assert json.loads(json.dumps(prov)) == prov  # plain data: it travels in Tune's config


def test_no_credentials_in_source_locations():
    assert _without_credentials("s3://key:secret@bucket/x.jsonl") == "s3://bucket/x.jsonl"
    assert _without_credentials("hf://datasets/a/b.json") == "hf://datasets/a/b.json"
    prov = sweep_provenance(presets.paper())
    assert "secret" not in json.dumps(prov) and "environ" not in json.dumps(prov)


def test_rows_carry_provenance_and_old_files_read_it_as_null(tmp_path):
    prov = sweep_provenance(presets.smoke())
    write_result(tmp_path, "new", _rows("new", prov))
    # A result file from before provenance: the old schema, without its columns.
    old_schema = pa.schema([f for f in SCHEMA if f.name not in
                            ("code_version", "code_dirty", "sources", "torch_version",
                             "transformers_version", "ray_version", "deepspeed_version",
                             "judge_snapshot")])
    old = [{k: v for k, v in r.items() if k in old_schema.names} for r in _rows("old", None)]
    (tmp_path / "results").mkdir(exist_ok=True)
    pq.write_table(pa.Table.from_pylist(old, schema=old_schema), tmp_path / "results/old.parquet")
    rows = {r["run_id"]: r for r in read_results(tmp_path).to_pylist()}
    assert rows["new"]["code_version"] == prov["code_version"]
    assert rows["new"]["ray_version"] == prov["libraries"]["ray"]
    assert json.loads(rows["new"]["sources"]) == prov["sources"]
    assert rows["old"]["code_version"] is None and rows["old"]["torch_version"] is None
    assert rows["old"]["judge_snapshot"] is None and rows["new"]["judge_snapshot"] is None

    text, tested, cells, _ = build_report(ResultSet.from_storage(tmp_path))
    assert text.count("## Provenance") == 1
    assert "runs differ in code:" in text
    assert f"{prov['code_version']}" in text and "unknown (written before provenance" in text
    js = {r["run_id"]: r for r in report_json(cells, tested)["rows"]}
    p = js["new"]["provenance"]
    assert p["code_version"] == prov["code_version"] and p["libraries"] == prov["libraries"]
    assert (p["preset"], p["base_model"], p["seed"]) == ("smoke", "smollm2_135m", 0)
    assert p["sources"] == prov["sources"] and p["judge_snapshot"] is None
    assert js["old"]["provenance"]["code_version"] is None


def test_one_code_version_is_printed_once_without_a_difference(tmp_path):
    prov = sweep_provenance(presets.smoke())
    write_result(tmp_path, "a", _rows("a", prov))
    write_result(tmp_path, "b", _rows("b", prov))
    text, _, _, _ = build_report(ResultSet.from_storage(tmp_path))
    assert "runs differ" not in text and text.count(prov["code_version"]) == 1
    assert f"ray {prov['libraries']['ray']}" in text
