"""What each question's report shows: abilities as columns, amounts or strategies as rows.

A `Spot` says where a cell's runs are in the results (which questions may have run them, the
strategy, f and k), so a row is found whichever question ran it: rq2's single-source rows are
rq1's runs. `Cells` pools a spot's seeds and never mixes MT-Bench judges (`one_judge`);
`cell_text` prints value, 95% interval and n.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from sweep.reporting.results import PERCENT
from sweep.study import paper


@dataclass(frozen=True)
class Ability:
    key: str  # the paper's metric name (sweep.study.paper.METRICS) or "general_proxy"
    title: str
    metric: str  # the results table's headline metric
    companions: tuple[str, ...]  # low-variance companions shown beside it
    source: str  # the single source that trains it (rq1's "<source> only")


ABILITIES = (
    Ability("gsm8k", "GSM8K flexible %", "gsm8k/flexible", ("gsm8k/ref_logprob",), "math"),
    Ability("humaneval", "HumanEval pass@1 %", "humaneval/pass@1", ("humaneval/ref_logprob",),
            "code"),
    Ability("mtbench", "MT-Bench (1-10)", "mtbench/mean", (), "general"),
    Ability("general_proxy", "General PROXY: held-out chat loss ↓",
            "general/loss", (), "general"),
)
COMPANION_TITLES = {"gsm8k/ref_logprob": "GSM8K ref. log-prob/token",
                    "humaneval/ref_logprob": "HumanEval ref. log-prob/token",
                    "gsm8k/strict": "GSM8K strict %"}


@dataclass(frozen=True)
class Spot:
    questions: tuple[str, ...]
    strategy: str
    fraction: Fraction | None = None
    k: Fraction | None = None


BASE = Spot(("base",), "base")


@dataclass(frozen=True)
class Cell:
    """A spot's value for one model and metric, pooled over its seeds."""
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int | None
    seeds: int
    sd: float | None  # spread across seeds (None for one seed)
    run_ids: tuple[str, ...]
    judged: bool = True


def _t(x: Fraction | None) -> str | None:
    return None if x is None else f"{x.numerator}/{x.denominator}"


JUDGED_METRIC = "mtbench/mean"


def _graded(row: dict) -> bool:
    return row["metric"] == JUDGED_METRIC and bool(row["judged"]) and row["value"] is not None


def one_judge(rows: Sequence[dict]) -> tuple[list[dict], str | None, dict[str, list[dict]]]:
    """(rows kept, the judge snapshot kept, {other snapshot: its MT-Bench rows set aside}).
    Grades of two judge snapshots are not comparable, so a table holds one: the snapshot that
    graded the most rows (ties: the first by name); other metrics are all kept."""
    snapshots = Counter(r.get("judge_snapshot") or "unrecorded" for r in rows if _graded(r))
    if not snapshots:
        return list(rows), None, {}
    keep = min(snapshots, key=lambda s: (-snapshots[s], s))
    kept, aside = [], {}
    for r in rows:
        snapshot = r.get("judge_snapshot") or "unrecorded"
        if _graded(r) and snapshot != keep:
            aside.setdefault(snapshot, []).append(r)
        else:
            kept.append(r)
    return kept, keep, aside


class Cells:
    """The results rows, found by (model, spot, metric) whichever question ran them. MT-Bench
    rows of one judge snapshot only (`judge`); the others wait in `set_aside` by snapshot."""

    def __init__(self, rows: Sequence[dict]):
        self.rows, self.judge, self.set_aside = one_judge(rows)
        self.by_key: dict[tuple, list[dict]] = {}
        for r in self.rows:
            key = (r["question"], r["model"], r["strategy"], r["fraction"], r["k"], r["metric"])
            self.by_key.setdefault(key, []).append(r)
        self.models = sorted({r["model"] for r in self.rows})

    def rows_at(self, model: str, spot: Spot, metric: str) -> list[dict]:
        for question in spot.questions:
            found = self.by_key.get((question, model, spot.strategy, _t(spot.fraction),
                                     _t(spot.k), metric))
            if found:
                return sorted(found, key=lambda r: r["seed"] or 0)
        return []

    def get(self, model: str, spot: Spot, metric: str) -> Cell | None:
        rows = self.rows_at(model, spot, metric)
        if not rows:
            return None
        ids = tuple(r["run_id"] for r in rows)
        values = [r["value"] for r in rows if r["value"] is not None]
        if not values:
            return Cell(None, None, None, None, len(rows), None, ids, judged=rows[0]["judged"])
        if len(rows) == 1:
            r = rows[0]
            return Cell(r["value"], r["ci_low"], r["ci_high"], r["n"], 1, None, ids)
        return Cell(statistics.fmean(values), min(r["ci_low"] for r in rows),
                    max(r["ci_high"] for r in rows), rows[0]["n"], len(rows),
                    statistics.stdev(values), ids)


def _num(v: float, metric: str = "") -> str:
    return f"{v:.1f}" if metric in PERCENT or abs(v) >= 10 else f"{v:.3f}"


def cell_text(cell: Cell | None, metric: str, mark: str = "") -> str:
    """'42.0 [32.8, 51.8] n=100', '0.0 [0.0, 3.7] n=100 (floor)', or over seeds
    '41.3 ±2.1 sd (3 seeds, n=100 each)'; '—' where nothing ran, 'not judged' without a judge."""
    if cell is None:
        return "—"
    if cell.value is None:
        return "not judged" if not cell.judged else "—"
    if cell.seeds > 1:
        return (f"{_num(cell.value, metric)} ±{_num(cell.sd, metric)} sd ({cell.seeds} seeds, "
                f"n={cell.n} each){mark}")
    floor = " (floor)" if cell.value == 0 and metric in PERCENT else ""
    return (f"{_num(cell.value, metric)} [{_num(cell.ci_low, metric)}, "
            f"{_num(cell.ci_high, metric)}] n={cell.n}{floor}{mark}")


# ---- the rows of each question ---------------------------------------------------------------

def single_spot(source: str, f: Fraction) -> Spot:
    return Spot(("rq1", "rq2"), f"{source} only", f)


def question_rows(question: str, fractions: Sequence[Fraction], ks: Sequence[Fraction]):
    """[(row label, {variant: per-ability spot function})] for one question's table. A variant
    is a column group ("single" and "mixed" in rq2); a spot function maps an Ability to where
    its value lies (rq1's rows read each ability from its own source's run)."""
    fs = sorted(fractions, reverse=True)
    if question == "rq1":
        return [(f"f={_t(f)}", {"single": lambda a, f=f: single_spot(a.source, f)}) for f in fs]
    if question == "rq2":
        return [(f"f={_t(f)}", {"single": lambda a, f=f: single_spot(a.source, f),
                                "mixed": lambda a, f=f: Spot(("rq2",), "mix", f)}) for f in fs]
    if question == "rq3":
        return [(f"{setup}, f={_t(f)}", {"": lambda a, s=setup, f=f: Spot(("rq3",), s, f)})
                for setup in paper.RQ3_SETUPS for f in fs]
    if question == "rq4":
        rows = [(s, {"": lambda a, s=s: Spot(("rq4",), s)}) for s in paper.RQ4_STRATEGIES]
        return rows + [(f"DMT k={_t(k)}", {"": lambda a, k=k: Spot(("rq4",), "DMT", k=k)})
                       for k in sorted(ks, reverse=True)]
    if question == "ablation":
        return [(f"f={_t(f)}", {"mix": lambda a, f=f: Spot(("rq2",), "mix", f),
                                "mix w/o code/math": lambda a, f=f: Spot(("ablation",), "mix", f)})
                for f in fs]
    raise ValueError(f"no table for question {question!r}")


# The pairs each question tests besides "every run vs base": (variant A, variant B).
PAIRED_VARIANTS = {"rq2": ("single", "mixed"), "ablation": ("mix", "mix w/o code/math")}
TITLES = {"rq1": "RQ1: one source alone at fraction f (Fig. 2)",
          "rq2": "RQ2: each source alone vs the three mixed, same amounts (Fig. 3, Tables 2-3)",
          "rq3": "RQ3: ratio setups (Fig. 4, Table 4)",
          "rq4": "RQ4: training strategies incl. DMT(k) (Tables 1 and 5)",
          "ablation": "Ablation: ShareGPT without code/math samples (Table 6)"}


# ---- what the results hold ------------------------------------------------------------------

QUESTIONS = ("rq1", "rq2", "rq3", "rq4", "ablation")


def grid_points(cells: Cells) -> tuple[list[Fraction], list[Fraction]]:
    """The fractions and ks that some run measured."""
    fs = {Fraction(r["fraction"]) for r in cells.rows if r["fraction"]}
    ks = {Fraction(r["k"]) for r in cells.rows if r["k"]}
    return sorted(fs, reverse=True), sorted(ks, reverse=True)


def questions_present(cells: Cells) -> list[str]:
    asked = {r["question"] for r in cells.rows}
    return [q for q in QUESTIONS if q in asked]
