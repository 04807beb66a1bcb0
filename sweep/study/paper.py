"""The paper's published numbers (Dong et al., Tables 1-6), as data for side-by-side reports.

These are the paper's values, never results of this project: the report prints them beside
each measured cell ("41.9 (paper 41.92)"). Table 1 comes from ../shared/paper/GRID.md, Tables
2-6 from the end of ../shared/paper/dmt-paper.txt, transcribed as printed (inconsistencies
between tables are kept, see INCONSISTENCIES). Look a cell up with `paper_value(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

METRICS = ("gsm8k", "humaneval", "mtbench")  # GSM8K accuracy %, HumanEval pass@1 %, MT-Bench 1-10
MODELS = ("llama_7b", "llama_13b", "llama_33b")
FRACTIONS = (Fraction(1), Fraction(1, 4), Fraction(1, 16), Fraction(1, 64), Fraction(1, 256))
RQ4_STRATEGIES = ("general only", "math only", "code only", "multi-task", "sequential",
                  "mixed sequential")
RQ3_SETUPS = ("fixed general", "fixed specialized", "fixed 1/64 general")
RQ1_SOURCE_METRIC = {"math": "gsm8k", "code": "humaneval", "general": "mtbench"}


@dataclass(frozen=True)
class PaperCell:
    table: int
    model: str
    question: str  # rq1 | rq2 | rq3 | rq4 | ablation
    strategy: str  # the grid's strategy name (sweep.study.grid)
    amount: Fraction | None  # the run's fraction f (rq1-rq3, ablation) or DMT's k; None otherwise
    metric: str  # one of METRICS
    value: float


def _row(values: str) -> list[float | None]:
    return [None if v == "-" else float(v) for v in values.split()]


# Table 1 (GRID.md): strategy -> {model: "GSM8K HumanEval MT-Bench"}.
_TABLE1 = {
    "general only": ("11.10 10.40 5.88", "14.02 16.40 6.13", "26.06 24.30 6.63"),
    "math only": ("49.10 - -", "51.40 - -", "57.90 - -"),
    "code only": ("- 18.40 -", "- 17.10 -", "- 26.82 -"),
    "multi-task": ("47.53 14.63 5.76", "50.94 19.50 5.73", "56.69 18.90 6.07"),
    "sequential": ("31.39 15.85 5.72", "39.12 20.12 5.93", "47.27 24.80 6.73"),
    "mixed sequential": ("32.60 15.24 6.02", "40.48 18.30 5.93", "44.24 24.40 6.43"),
    "DMT": ("41.92 17.68 6.08", "46.47 19.50 6.03", "56.36 25.00 6.69"),  # k = 1/256
}

# Tables 2 (7B, 13B) and 3 (33B): "Single(k=f)" and "Mix(k=f)" rows, fractions in FRACTIONS order.
_TABLE23 = {
    "llama_7b": {
        "single": ("49.10 18.4 5.88", "43.37 11.58 5.85", "35.90 12.19 5.61",
                   "22.71 9.14 5.11", "12.70 5.48 4.00"),
        "mix": ("47.53 14.63 5.76", "41.98 9.14 5.48", "32.97 9.16 5.22",
                "25.77 14.63 5.27", "14.78 11.37 4.11"),
    },
    "llama_13b": {
        "single": ("51.4 18.4 6.13", "48.59 13.41 6.03", "43.00 12.80 5.66",
                   "27.40 12.20 5.24", "18.40 10.36 2.95"),
        "mix": ("50.49 17.10 5.73", "48.52 14.00 5.61", "40.63 14.60 5.52",
                "33.2 17.68 5.24", "24.94 12.19 4.4"),
    },
    "llama_33b": {
        "single": ("57.91 26.82 6.63", "56.10 25.61 6.66", "54.60 21.95 6.17",
                   "44.60 18.59 5.99", "29.21 14.02 2.3"),
        "mix": ("56.69 18.9 6.07", "54.54 22.56 5.92", "53.33 26.82 6.26",
                "46.66 18.6 5.73", "36.54 17.68 4.58"),
    },
}

# Table 4 (LLaMA-7B, GRID.md RQ3): setup -> rows in FRACTIONS order of the varied amount.
_TABLE4 = {
    "fixed general": ("47.53 14.63 5.76", "48.44 15.85 5.73", "47.99 15.24 5.27",
                      "47.23 14.63 5.16", "48.52 16.46 4.69"),  # Mix[(code,math),f general]
    "fixed specialized": ("47.53 14.63 5.76", "41.31 10.97 5.81", "33.20 11.58 5.76",
                          "25.17 12.19 5.84", "16.52 9.14 5.82"),  # Mix[f(code,math),general]
    "fixed 1/64 general": ("47.68 14.63 5.09", "43.29 12.19 5.07", "33.81 12.19 5.17",
                           "26.23 12.19 5.12", "18.27 10.36 5.12"),  # Mix[f(code,math),1/64 general]
}

# Table 5 (7B, 13B): DMT(k) rows; the other rows repeat Table 1 (checked by the tests).
_TABLE5_DMT = {
    "llama_7b": {Fraction(1): "45.79 14.02 5.63", Fraction(1, 4): "48.37 13.41 5.69",
                 Fraction(1, 16): "43.3 15.24 5.78", Fraction(1, 64): "42.53 15.85 6.01",
                 Fraction(1, 256): "41.92 17.68 6.08"},
    "llama_13b": {Fraction(1): "50.49 16.46 5.76", Fraction(1, 4): "50.18 18.9 5.83",
                  Fraction(1, 16): "48.59 18.9 5.96", Fraction(1, 64): "47.61 15.24 6.03",
                  Fraction(1, 256): "46.47 19.5 6.03"},
}

# Table 6: ablation, Mix(code, math, general w/o code math) at f. The table names no model; its
# f=1 row is close to Table 2's LLaMA-7B mix and the ablation is a 7B study, so keyed as 7B.
_TABLE6 = ("49.05 17.68 5.80", "43.13 15.85 5.71", "36.23 10.36 5.38",
           "25.62 10.97 5.21", "15.31 11.37 4.38")

INCONSISTENCIES = (
    "LLaMA-13B code only: Table 1 HumanEval 17.1, Table 2 Single(k=1) HumanEval 18.4.",
    "LLaMA-13B multi-task: Table 1 GSM8K 50.94, Table 2 Mix(k=1) GSM8K 50.49.",
    "LLaMA-33B math only: Table 1 GSM8K 57.90, Table 3 Single(k=1) GSM8K 57.91.",
    "LLaMA-33B DMT(1/256) HumanEval: Table 1 25.00, the text says 25.5.",
    "Table 6 names no model; keyed here as LLaMA-7B.",
)


def _cells_of(table, model, question, strategy, amount, values) -> list[PaperCell]:
    return [PaperCell(table, model, question, strategy, amount, metric, value)
            for metric, value in zip(METRICS, _row(values), strict=True) if value is not None]


def _build() -> tuple[PaperCell, ...]:
    cells: list[PaperCell] = []
    for strategy, per_model in _TABLE1.items():
        k = Fraction(1, 256) if strategy == "DMT" else None
        for model, values in zip(MODELS, per_model, strict=True):
            cells += _cells_of(1, model, "rq4", strategy, k, values)
    for model, rows in _TABLE23.items():
        table = 3 if model == "llama_33b" else 2
        for f, values in zip(FRACTIONS, rows["mix"], strict=True):
            cells += _cells_of(table, model, "rq2", "mix", f, values)
        for f, values in zip(FRACTIONS, rows["single"], strict=True):
            # A "Single" row joins three RQ1 runs: each metric belongs to its own source's run.
            for source, metric in RQ1_SOURCE_METRIC.items():
                value = _row(values)[METRICS.index(metric)]
                cells.append(PaperCell(table, model, "rq1", f"{source} only", f, metric, value))
    for setup, rows in _TABLE4.items():
        for f, values in zip(FRACTIONS, rows, strict=True):
            cells += _cells_of(4, "llama_7b", "rq3", setup, f, values)
    for model, rows in _TABLE5_DMT.items():
        for k, values in rows.items():
            cells += _cells_of(5, model, "rq4", "DMT", k, values)
    for f, values in zip(FRACTIONS, _TABLE6, strict=True):
        cells += _cells_of(6, "llama_7b", "ablation", "mix", f, values)
    return tuple(cells)


CELLS = _build()


def _index() -> dict[tuple, float]:
    """(question, model, strategy, amount, metric) -> value; Table 1 wins over Table 5's repeats
    (identical for DMT(1/256)), so each key has exactly one value."""
    out: dict[tuple, float] = {}
    for cell in sorted(CELLS, key=lambda c: -c.table):
        out[(cell.question, cell.model, cell.strategy, cell.amount, cell.metric)] = cell.value
    return out


_INDEX = _index()


def paper_value(question: str, model: str, strategy: str, amount: Fraction | None,
                metric: str) -> float | None:
    """The paper's number for one cell, or None where the paper has none."""
    return _INDEX.get((question, model, strategy, amount, metric))


def table_cells(table: int) -> list[PaperCell]:
    return [c for c in CELLS if c.table == table]
