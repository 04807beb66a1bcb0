"""What each question's report shows: abilities as columns (one per evaluation the runs were
scored with, in the order they were given, for every run), amounts or strategies as rows.

A `Spot` says where a cell's runs are in the results (which questions may have run them, the
strategy, f and k), so a row is found whichever question ran it: rq2's single-source rows are
rq1's runs. `Cells` pools a spot's seeds (the interval over seeds and items), never mixes
MT-Bench judges (`one_judge`), and notes a cell whose seeds were not all judged; `cell_text`
prints value, 95% interval and n.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from evals.stats import seeded_interval
from sweep.reporting.result_set import ResultSet
from sweep.reporting.results import scale
from sweep.study.grid import rq3_order

QUESTIONS = ("rq1", "rq2", "rq3", "rq4", "ablation")
TITLES = {"rq1": "RQ1: one source alone at fraction f (Fig. 2)",
          "rq2": "RQ2: each source alone vs the sources mixed, same amounts (Fig. 3, Tables 2-3)",
          "rq3": "RQ3: ratio setups (Fig. 4, Table 4)",
          "rq4": "RQ4: training strategies incl. DMT(k) (Tables 1 and 5)",
          "ablation": "Ablation: ShareGPT without code/math samples (Table 6)"}
RQ4_ORDER = ("multi-task", "sequential", "mixed sequential")


@dataclass(frozen=True)
class Ability:
    key: str  # the evaluation's name in the results ("gsm8k", "general", "arc_easy", ...)
    title: str
    metric: str  # the headline metric
    companions: tuple[str, ...]  # low-variance companions shown beside it
    source: str | None = None  # the paper's source that trains it (rq2 pairs mix with it)


BUILTIN = {
    "gsm8k": Ability("gsm8k", "GSM8K flexible %", "gsm8k/flexible",
                     ("gsm8k/ref_logprob", "gsm8k/strict"), "math"),
    "humaneval": Ability("humaneval", "HumanEval pass@1 %", "humaneval/pass@1",
                         ("humaneval/ref_logprob",), "code"),
    "humanevalplus": Ability("humanevalplus", "HumanEval+ pass@1 %", "humanevalplus/pass@1",
                             ("humanevalplus/ref_logprob",), "code"),
    "mtbench": Ability("mtbench", "MT-Bench (1-10)", "mtbench/mean", (), "general"),
    "general": Ability("general", "General PROXY: held-out chat loss ↓", "general/loss", (),
                       "general"),
}
COMPANION_TITLES = {"gsm8k/ref_logprob": "GSM8K ref. log-prob/token",
                    "humaneval/ref_logprob": "HumanEval ref. log-prob/token",
                    "humanevalplus/ref_logprob": "HumanEval+ ref. log-prob/token",
                    "gsm8k/strict": "GSM8K strict %"}
HEADLINE_FIRST = ("acc", "exact_match", "pass@1", "f1", "mean")  # an lm-eval task's headline


def abilities_of(rows: Sequence[dict]) -> list[Ability]:
    """One ability per evaluation in the results, in the order the runs list their metrics (the
    order given to --evals). Built-in evaluations have their headline and companions; another
    (an lm-eval task, `TASK/METRIC`) takes its accuracy-like metric as the headline and the
    others as companions."""
    metrics: dict[str, list[str]] = {}
    for r in rows:
        key = r["metric"].split("/", 1)[0]
        metrics.setdefault(key, [])
        if r["metric"] not in metrics[key]:
            metrics[key].append(r["metric"])
    out = []
    for key, names in metrics.items():
        if key in BUILTIN:
            out.append(BUILTIN[key])
            continue
        head = next((f"{key}/{m}" for m in HEADLINE_FIRST if f"{key}/{m}" in names), names[0])
        out.append(Ability(key, head, head, tuple(m for m in names if m != head)))
    return out


def title_of(metric: str, abilities: Sequence[Ability]) -> str:
    for a in abilities:
        if a.metric == metric:
            return a.title
    return COMPANION_TITLES.get(metric, metric)


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
    sd: float | None  # spread of the seeds' values (None for one seed)
    run_ids: tuple[str, ...]
    judged: bool = True
    kind: str = "continuous"
    note: str = ""  # e.g. "1 of 2 seeds judged"


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

    def __init__(self, results: ResultSet):
        self.results = results
        self.rows, self.judge, self.set_aside = one_judge(results.rows)
        self.by_key: dict[tuple, list[dict]] = {}
        for r in self.rows:
            key = (r["question"], r["model"], r["strategy"], r["fraction"], r["k"], r["metric"])
            self.by_key.setdefault(key, []).append(r)
        self.models = sorted({r["model"] for r in self.rows})
        self.abilities = abilities_of(self.rows)

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
        kind = rows[0]["kind"]
        graded = [r for r in rows if r["value"] is not None]
        note = (f"{len(graded)} of {len(rows)} seeds judged"
                if graded and len(graded) < len(rows) else "")
        ids = tuple(r["run_id"] for r in graded or rows)
        if not graded:
            return Cell(None, None, None, None, len(rows), None, ids, rows[0]["judged"], kind)
        if len(graded) == 1:
            r = graded[0]
            return Cell(r["value"], r["ci_low"], r["ci_high"], r["n"], 1, None, ids, True,
                        kind, note)
        sd = statistics.stdev(r["value"] for r in graded)
        try:
            seeds = self.results.seeds_of(list(ids), metric)
        except FileNotFoundError:  # results without per-item outcomes: the seeds' own span
            span = "no per-item outcomes: the span of the seeds' intervals"
            return Cell(statistics.fmean(r["value"] for r in graded),
                        min(r["ci_low"] for r in graded), max(r["ci_high"] for r in graded),
                        graded[0]["n"], len(graded), sd, ids, True, kind,
                        "; ".join(filter(None, (note, span))))
        mean, lo, hi, n = seeded_interval(seeds, kind)
        return Cell(scale(kind, mean), scale(kind, lo), scale(kind, hi), n, len(graded), sd,
                    ids, True, kind, note)


def _num(v: float, kind: str) -> str:
    return f"{v:.1f}" if kind == "binary" or abs(v) >= 10 else f"{v:.3f}"


def cell_text(cell: Cell | None, mark: str = "") -> str:
    """'42.0 [32.8, 51.8] n=100', '0.0 [0.0, 3.7] n=100 (floor)', or over seeds
    '41.3 [35.2, 47.0] 3 seeds x n=100, sd 2.1'; '—' where nothing ran, 'not judged' without a
    judge."""
    if cell is None:
        return "—"
    if cell.value is None:
        return "not judged" if not cell.judged else "—"
    note = f" ({cell.note})" if cell.note else ""
    span = f"{_num(cell.value, cell.kind)} [{_num(cell.ci_low, cell.kind)}, " \
           f"{_num(cell.ci_high, cell.kind)}]"
    if cell.seeds > 1:
        return (f"{span} {cell.seeds} seeds x n={cell.n}, sd {_num(cell.sd, cell.kind)}"
                f"{note}{mark}")
    floor = " (floor)" if cell.value == 0 and cell.kind == "binary" else ""
    return f"{span} n={cell.n}{floor}{note}{mark}"


# ---- the rows of each question -----------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    label: str
    spot: Spot


@dataclass(frozen=True)
class Pair:
    """Two rows each question compares besides "every row vs base": B minus A, on the
    abilities listed (None: every ability)."""
    label: str
    a: Row
    b: Row
    abilities: tuple[str, ...] | None = None


def _present(cells: Cells, question: str) -> list[dict]:
    return [r for r in cells.rows if r["question"] == question]


def _fractions(rows: list[dict]) -> list[Fraction]:
    return sorted({Fraction(r["fraction"]) for r in rows if r["fraction"]}, reverse=True)


def _singles(cells: Cells, questions: tuple[str, ...]) -> list[str]:
    found = {r["strategy"].removesuffix(" only") for r in cells.rows
             if r["question"] in questions and r["strategy"].endswith(" only")}
    paper = [s for s in ("math", "code", "general") if s in found]
    return paper + sorted(found - set(paper))


def _at(f: Fraction | None) -> str:
    return "" if f is None else f"f={_t(f)}"


def question_rows(question: str, cells: Cells) -> tuple[list[Row], list[Pair]]:
    """The rows of one question's table, from the runs present, and the pairs it compares."""
    rows = _present(cells, question)
    if question == "rq1":
        return [Row(f"{s} only, {_at(f)}", Spot(("rq1", "rq2"), f"{s} only", f))
                for f in _fractions(rows) for s in _singles(cells, ("rq1",))], []
    if question == "rq2":
        out, pairs = [], []
        for f in _fractions([r for r in rows if r["strategy"] == "mix"]):
            singles = [Row(f"{s} only, {_at(f)}", Spot(("rq1", "rq2"), f"{s} only", f))
                       for s in _singles(cells, ("rq1", "rq2"))]
            mixed = Row(f"mixed, {_at(f)}", Spot(("rq2",), "mix", f))
            out += singles + [mixed]
            pairs += _mix_pairs(f, singles, mixed, cells)
        return out, pairs
    if question == "rq3":
        setups = sorted({r["strategy"] for r in rows}, key=lambda s: (rq3_order(s), s))
        return [Row(f"{setup}, {_at(f)}", Spot(("rq3",), setup, f))
                for setup in setups for f in _fractions(rows)], []
    if question == "rq4":
        return _rq4_rows(rows), []
    if question == "ablation":
        out, pairs = [], []
        for f in _fractions(rows):
            a, b = Row(f"mix, {_at(f)}", Spot(("rq2",), "mix", f)), \
                Row(f"mix w/o code/math, {_at(f)}", Spot(("ablation",), "mix", f))
            out += [a, b]
            pairs.append(Pair(f"w/o code/math − mix, {_at(f)}", a, b))
        return out, pairs
    raise ValueError(f"no table for question {question!r}")


def _mix_pairs(f, singles: list[Row], mixed: Row, cells: Cells) -> list[Pair]:
    """Mixed vs each ability's own source alone (the paper's comparison: math for GSM8K...);
    an ability no source is known to train is compared with every single."""
    pairs = []
    for row in singles:
        source = row.spot.strategy.removesuffix(" only")
        own = tuple(a.key for a in cells.abilities if a.source == source)
        unknown = tuple(a.key for a in cells.abilities if a.source is None)
        if own or unknown:
            pairs.append(Pair(f"mixed − {source} only, {_at(f)}", row, mixed, own + unknown))
    return pairs


def _rq4_rows(rows: list[dict]) -> list[Row]:
    amounts = sorted({Fraction(r["fraction"]) if r["fraction"] else None for r in rows},
                     key=lambda a: -(a or 1))
    out = []
    for a in amounts:
        here = [r for r in rows if (Fraction(r["fraction"]) if r["fraction"] else None) == a]
        tail = "" if a is None else f", all at {_t(a)}"
        singles = sorted({r["strategy"] for r in here if r["strategy"].endswith(" only")})
        named = [s for s in RQ4_ORDER if any(r["strategy"] == s for r in here)]
        out += [Row(f"{s}{tail}", Spot(("rq4",), s, a)) for s in singles + named]
        ks = sorted({Fraction(r["k"]) for r in here if r["k"]}, reverse=True)
        out += [Row(f"DMT k={_t(k)}{tail}", Spot(("rq4",), "DMT", a, k)) for k in ks]
    return out


# ---- what the results hold ----------------------------------------------------------------------

def questions_present(cells: Cells) -> list[str]:
    asked = {r["question"] for r in cells.rows}
    return [q for q in QUESTIONS if q in asked]
