"""The paper's numbers in sweep/study/paper.py match the paper's text, cell by cell, and agree with
themselves where tables repeat (Table 5 repeats Table 1; RQ3's f=1 rows are multi-task)."""

from __future__ import annotations

import re
from fractions import Fraction as F

import pytest
from paths import REPO

from sweep.study import paper

PAPER_DIR = REPO.parent / "shared" / "paper"
FRACTION_LABELS = ("1", "1/4", "1/16", "1/64", "1/256")


def _paper_rows() -> list[tuple[str, list[float | None]]]:
    """Appendix D's table lines as (label, numbers), in order of appearance."""
    path = PAPER_DIR / "dmt-paper.txt"
    if not path.exists():
        pytest.skip(f"paper text not found at {path}")
    text = path.read_text(encoding="utf-8")
    body = text[text.index("D.5 Supplemental results"):]
    rows = []
    for line in body.splitlines():
        m = re.match(r"^(.*?[^\d\s.-])\s+((?:(?:\d+(?:\.\d+)?|-)\s*)+)$", line.strip())
        if m:
            rows.append((m.group(1).strip(), paper._row(m.group(2))))
    return rows


def _find(rows, label: str, occurrence: int = 0) -> list[float | None]:
    hits = [nums for lab, nums in rows if lab == label]
    assert len(hits) > occurrence, f"{label!r} not found in the paper's Appendix D"
    return hits[occurrence]


def test_tables_2_and_3_match_text():
    rows = _paper_rows()
    for i, f in enumerate(paper.FRACTIONS):
        for kind, strategy_of in (("Single", None), ("Mix", "mix")):
            t2 = _find(rows, f"{kind}(k={FRACTION_LABELS[i]})", 0)
            t3 = _find(rows, f"{kind}(k={FRACTION_LABELS[i]})", 1)
            for model, nums in (("llama_7b", t2[:3]), ("llama_13b", t2[3:]), ("llama_33b", t3)):
                for metric, value in zip(paper.METRICS, nums, strict=True):
                    if strategy_of:
                        got = paper.paper_value("rq2", model, "mix", f, metric)
                    else:
                        source = {v: k for k, v in paper.RQ1_SOURCE_METRIC.items()}[metric]
                        got = paper.paper_value("rq1", model, f"{source} only", f, metric)
                    assert got == value, (kind, model, f, metric)


def test_tables_4_5_6_match_text():
    rows = _paper_rows()
    for i, f in enumerate(paper.FRACTIONS):
        lab = FRACTION_LABELS[i]
        checks = {
            "fixed general": f"Mix[(code,math),{lab} general]",
            "fixed specialized": f"Mix[{lab}(code,math),general]",
            "fixed 1/64 general": f"Mix[{lab}(code,math),1/64general]",
        }
        for setup, label in checks.items():
            nums = _find(rows, label)
            got = [paper.paper_value("rq3", "llama_7b", setup, f, m) for m in paper.METRICS]
            assert got == nums, (setup, f)
        nums = _find(rows, f"DMT (k={lab})")
        for model, part in (("llama_7b", nums[:3]), ("llama_13b", nums[3:])):
            got = [c.value for c in paper.table_cells(5) if c.model == model and c.amount == f]
            assert got == part, (model, f)
        label6 = ("1/1" if lab == "1" else lab) + " Mix(code,math,general(w/o code math))"
        got = [paper.paper_value("ablation", "llama_7b", "mix", f, m) for m in paper.METRICS]
        assert got == _find(rows, label6)


def test_table_1_matches_grid_md():
    path = PAPER_DIR / "GRID.md"
    if not path.exists():
        pytest.skip(f"GRID.md not found at {path}")
    names = {"DMT (k=1/256)": "DMT"}
    seen = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if len(parts) != 4 or "/" not in parts[1] or parts[0] == "strategy":
            continue
        strategy = names.get(parts[0], parts[0])
        k = F(1, 256) if strategy == "DMT" else None
        for model, cell in zip(paper.MODELS, parts[1:], strict=True):
            for metric, value in zip(paper.METRICS, paper._row(cell.replace("/", " ")),
                                     strict=True):
                assert paper.paper_value("rq4", model, strategy, k, metric) == value
        seen += 1
    assert seen == 7


def test_repeated_cells_agree():
    t1 = {(c.model, c.strategy, c.metric): c.value for c in paper.table_cells(1)}
    for c in paper.table_cells(5):
        if c.amount == F(1, 256):
            assert t1[(c.model, "DMT", c.metric)] == c.value
    for setup in ("fixed general", "fixed specialized"):
        for m in paper.METRICS:
            assert (paper.paper_value("rq3", "llama_7b", setup, F(1), m)
                    == t1[("llama_7b", "multi-task", m)])
    # General only at f=1 is the same run in Tables 1 and 2 (MT-Bench 5.88 / 6.13 / 6.63).
    for model in paper.MODELS:
        assert (paper.paper_value("rq1", model, "general only", F(1), "mtbench")
                == t1[(model, "general only", "mtbench")])
    assert paper.paper_value("rq4", "llama_7b", "sequential", None, "gsm8k") == 31.39
    assert paper.paper_value("rq2", "llama_7b", "mix", F(1, 3), "gsm8k") is None
    assert len({(c.question, c.model, c.strategy, c.amount, c.metric, c.table)
                for c in paper.CELLS}) == len(paper.CELLS)
