"""The report from per-item outcomes: intervals on every number, base rows, paired tests with
Holm correction, seeds pooled, the JSON schema and `--compare`, on a storage written the way a
sweep writes it (results + items), with outcomes drawn so that the expected verdicts are known."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from synthetic import eval_out, write_sweep

from sweep.report import main
from sweep.reporting.document import build_report, write_report
from sweep.reporting.result_set import ResultSet
from sweep.reporting.results import (
    measurements_of,
    read_items,
)

# GSM8K accuracy by strategy: math training helps a lot, code and general do not.



def test_measurements_have_n_and_intervals_from_items():
    got = {m.metric: m for m in measurements_of(eval_out("math only", 0))}
    flex = got["gsm8k/flexible"]
    assert flex.n == 120 and flex.ci_low <= flex.value <= flex.ci_high
    assert flex.ci_high - flex.ci_low < 20  # Wilson at n=120: about +-9 points
    assert got["humaneval/pass@1"].value == 0 and got["humaneval/pass@1"].ci_high > 0
    assert got["mtbench/mean"].value is None and not got["mtbench/mean"].judged
    assert got["general/loss"].n == 40
    with pytest.raises(ValueError, match="no per-item outcomes"):
        measurements_of({"gsm8k": {"metrics": {"accuracy_flexible": 0.5}}})


def test_items_round_trip_through_storage(tmp_path):
    ids = write_sweep(tmp_path)
    items = read_items(tmp_path, ids[("base", 0)])
    assert len(items["gsm8k/flexible"]) == 120 and set(items) == {
        "gsm8k/flexible", "gsm8k/ref_logprob", "humaneval/pass@1", "general/loss"}
    with pytest.raises(FileNotFoundError, match="no per-item results"):
        read_items(tmp_path, "nope")


def test_rq2_report_has_base_every_run_on_every_ability_and_holm_verdicts(tmp_path):
    write_sweep(tmp_path)
    text, tested, _, _ = build_report(ResultSet.from_storage(str(tmp_path)))
    rq2 = text.split("### RQ2")[1].split("### ")[0]
    lines = [ln for ln in rq2.splitlines() if ln.startswith("|")]
    header = lines[0]
    assert "GSM8K flexible %" in header and "General PROXY" in header
    assert "MT-Bench" not in header  # never judged: no all-empty column
    base = next(ln for ln in lines if ln.startswith("| base model"))
    assert "n=120" in base and "n=20 (floor)" in base
    rows = {ln.split("|")[1].strip(): ln.split("|")[2:-1] for ln in lines[2:]}
    # the full source x ability matrix: every run on every ability
    for label in ("math only, f=1/4", "code only, f=1/4", "general only, f=1/4",
                  "mixed, f=1/4"):
        assert all(cell.strip() not in ("", "—") for cell in rows[label]), label
    # math training lifts GSM8K from ~2% to ~45%: significant against the base after Holm;
    # code alone does not
    assert rows["math only, f=1/4"][0].strip().endswith("*")
    assert rows["mixed, f=1/4"][0].strip().endswith("*")
    assert not rows["code only, f=1/4"][0].strip().endswith("*")
    assert "n=20 (floor)" in rows["math only, f=1/4"][1]
    # mixed is compared with each ability's own source alone: GSM8K with math only
    delta = rows["Δ mixed − math only, f=1/4"]
    assert "p_holm=" in delta[0] and delta[2].strip() == "—"
    assert "p_holm=" in rows["Δ mixed − general only, f=1/4"][2]
    # each table states its test and its families with their sizes
    fams = {(t.family, t.family_size) for t in tested if t.family.startswith("rq2")}
    for family, size in fams:
        if family.endswith("(headline)"):
            assert f"family `{family}` ({size} tests, Holm)" in rq2
    assert "Tests: exact McNemar, paired sign-flip." in rq2
    by = {(t.family.split(": ")[1], t.label_b, t.result.metric): t for t in tested
          if t.family.startswith("rq2")}
    math_single = by[("vs base (headline)", "math only, f=1/4", "gsm8k/flexible")]
    assert math_single.significant and math_single.result.test == "exact McNemar"
    assert math_single.p_holm >= math_single.result.p
    assert math_single.family_size == len([t for t in tested
                                           if t.family == math_single.family])
    same = by[("mixed vs single (headline)", "mixed, f=1/4", "gsm8k/flexible")]
    assert same.result.n == 120 and not same.significant  # both trained on the same math
    assert "paper" in text and "41.98" in text  # the paper's Table 2 mix@1/4 for LLaMA-7B
    assert "## Claims" in text


def test_seeds_are_pooled_with_an_interval_over_seeds_and_items(tmp_path):
    write_sweep(tmp_path, seeds=2)
    out = write_report(str(tmp_path), tmp_path / "report")
    text = (out / "report.md").read_text()
    rq2 = text.split("### RQ2")[1]
    single = next(ln for ln in rq2.splitlines() if ln.startswith("| math only, f=1/4"))
    assert "2 seeds x n=120, sd" in single.split("|")[2] and "[" in single.split("|")[2]
    assert "Welch t over seeds" in rq2.split("### ")[0]  # the header names the test used
    assert (out / "fig3_rq2_mixed_vs_single.png").read_bytes()[:4] == b"\x89PNG"


def test_json_rows_and_compare_cli(tmp_path, capsys):
    ids = write_sweep(tmp_path)
    main(["--storage", str(tmp_path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert {"rows", "base", "comparisons"} <= set(data)
    assert data["base"] and all(r["question"] == "base" for r in data["base"])
    for row in data["rows"] + data["base"]:
        for key in ("run_id", "question", "model", "strategy", "amounts", "k", "seed", "metric",
                    "value", "n", "ci_low", "ci_high"):
            assert key in row
        if row["value"] is not None:
            assert row["ci_low"] <= row["value"] <= row["ci_high"] and row["n"] > 0
    mix = next(r for r in data["rows"] if r["strategy"] == "mix")
    assert mix["amounts"] == {"code": "1/4", "general": "1/4", "math": "1/4"}
    main(["--storage", str(tmp_path), "--compare", ids[("base", 0)], ids[("math only", 0)]])
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("gsm8k/flexible"))
    assert "exact McNemar, n = 120 paired items" in line and "pp [95% CI" in line


def test_report_command_runs_as_a_user_would(tmp_path):
    ids = write_sweep(tmp_path)
    done = subprocess.run([sys.executable, "-m", "sweep.report", "--storage", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip().splitlines()[-1] == f"report: {tmp_path / 'report'}"
    saved = json.loads((tmp_path / "report" / "report.json").read_text())
    # GSM8K in percent, counted here from the outcomes the sweep wrote, not by the report
    outcome = {s: [i["value"] for i in eval_out(s, 0)["gsm8k"]["items"]
                   if i["metric"] == "accuracy_flexible"] for s in ("base", "math only")}
    rows = {(r["run_id"], r["metric"]): r for r in saved["rows"] + saved["base"]}
    for strategy, values in outcome.items():
        row = rows[(ids[(strategy, 0)], "gsm8k/flexible")]
        assert row["value"] == pytest.approx(100 * sum(values) / 120) and row["n"] == 120
    vs_base = [c for c in saved["comparisons"] if c["metric"] == "gsm8k/flexible"
               and c["runs_a"] == [ids[("base", 0)]] and c["runs_b"] == [ids[("math only", 0)]]]
    pairs = list(zip(outcome["base"], outcome["math only"], strict=True))
    assert vs_base and all((c["a_only"], c["b_only"]) == (sum(a > b for a, b in pairs),
                                                          sum(b > a for a, b in pairs))
                           and c["test"] == "exact McNemar" and c["significant"]
                           for c in vs_base)
    assert {p.name for p in (tmp_path / "report").iterdir()} >= {
        "report.md", "report.json", "fig3_rq2_mixed_vs_single.png"}
