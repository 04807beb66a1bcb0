"""The report as documents: report.md (one table per question shaped like the paper's, a column
per ability, the base model's row, n and a 95% interval on every number, Holm-corrected paired
tests against the base model and between the question's paired rows, each table naming its
test and its families; the paper's numbers beside; the claims), report.json, and the figures
(sweep/reporting/figures.py). `python -m sweep.report` runs it on a storage or an export.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.storage import Storage
from sweep.decision.recommend import markdown as recommend_markdown
from sweep.reporting import claims as claim_module
from sweep.reporting.budget import render_budget
from sweep.reporting.compare import Tested, shown, tested_family
from sweep.reporting.figures import write_figures
from sweep.reporting.result_set import ResultSet
from sweep.reporting.sections import (
    provenance_of,
    render_judges,
    render_paper,
    render_provenance,
)
from sweep.reporting.tables import (
    BASE,
    TITLES,
    Cells,
    Row,
    cell_text,
    question_rows,
    questions_present,
    title_of,
)
from trainers.data.recipe import format_amount, parse_recipe

KINDS_OF_TABLE = (("headline", lambda a: [a.metric]),
                  ("companions", lambda a: list(a.companions)))


# ---- comparisons -------------------------------------------------------------------------------

def families(question: str, model: str, cells: Cells) -> dict[str, list[Tested]]:
    """{family name: [Tested]}: every row vs the base model, and the question's pairs; the
    headline metrics form one family and the companions another, each Holm-corrected."""
    rows, pairs = question_rows(question, cells)
    out = {}
    for kind, metrics_of in KINDS_OF_TABLE:
        vs_base, paired = [], []
        for ability in cells.abilities:
            for metric in metrics_of(ability):
                base = cells.get(model, BASE, metric)
                for row in rows:
                    cell = cells.get(model, row.spot, metric)
                    if _has(base) and _has(cell):
                        vs_base.append(("base", base.run_ids, row.label, cell.run_ids, metric))
                for pair in pairs:
                    if pair.abilities is not None and ability.key not in pair.abilities:
                        continue
                    a, b = cells.get(model, pair.a.spot, metric), cells.get(model, pair.b.spot,
                                                                            metric)
                    if _has(a) and _has(b):
                        paired.append((pair.a.label, a.run_ids, pair.b.label, b.run_ids, metric))
        name = f"{question} {model}: vs base ({kind})"
        out[name] = tested_family(name, vs_base, cells.results)
        if pairs:
            name = f"{question} {model}: {_pair_family(question)} ({kind})"
            out[name] = tested_family(name, paired, cells.results)
    return out


def _pair_family(question: str) -> str:
    return {"rq2": "mixed vs single", "ablation": "w/o code/math vs mix"}.get(question, "pairs")


def _has(cell) -> bool:
    return cell is not None and cell.value is not None


# ---- Markdown ----------------------------------------------------------------------------------

def _columns(cells: Cells, model: str, rows: list[Row], kind: str) -> list[tuple[str, str]]:
    metrics_of = dict(KINDS_OF_TABLE)[kind]
    columns = [(title_of(m, cells.abilities), m) for a in cells.abilities for m in metrics_of(a)]
    return [(t, m) for t, m in columns
            if any(_has(cells.get(model, r.spot, m)) for r in [Row("", BASE), *rows])]


def _tests_line(tested: list[Tested]) -> str:
    tests = sorted({t.result.test.split(" (")[0] for t in tested})
    fams = sorted({(t.family, t.family_size) for t in tested})
    return ("Tests: " + (", ".join(tests) or "none") + ". Stars belong to "
            + "; ".join(f"family `{f}` ({n} tests, Holm)" for f, n in fams) + ".")


def render_question(question: str, model: str, cells: Cells, tested: list[Tested],
                    kind: str = "headline") -> str:
    """Rows = amounts or strategies, then the paired differences (Δ); columns = abilities
    (headline metrics, or their companions). Under the title: the tests used and the families
    the stars belong to, with their sizes."""
    rows, pairs = question_rows(question, cells)
    columns = _columns(cells, model, rows, kind)
    if not columns:
        return ""
    mine = [t for t in tested if t.family.endswith(f"({kind})")]
    sig = {(t.label_b, t.result.metric) for t in mine if t.significant and t.label_a == "base"}
    deltas = {(t.label_a, t.label_b, t.result.metric): t for t in mine if t.label_a != "base"}
    title = "companions (low-variance)" if kind == "companions" else "headline"
    lines = [f"### {TITLES[question]}: {model}, {title}", "", _tests_line(mine), "",
             "| | " + " | ".join(t for t, _ in columns) + " |", "|---" * (len(columns) + 1) + "|",
             "| base model | " + " | ".join(cell_text(cells.get(model, BASE, m))
                                           for _, m in columns) + " |"]
    for row in rows:
        got = [cells.get(model, row.spot, m) for _, m in columns]
        if any(_has(c) for c in got):
            lines.append(f"| {row.label} | " + " | ".join(
                cell_text(c, " *" if (row.label, m) in sig else "")
                for c, (_, m) in zip(got, columns, strict=True)) + " |")
    for pair in pairs:
        ts = [deltas.get((pair.a.label, pair.b.label, m)) for _, m in columns]
        if any(ts):
            lines.append(f"| Δ {pair.label} | " + " | ".join(_delta_text(t) for t in ts) + " |")
    return "\n".join(lines) + "\n"


def _delta_text(t: Tested | None) -> str:
    if t is None:
        return "—"
    c = shown(t.result)
    star = " *" if t.significant else ""
    partial = f" (n={c.n}, {c.n_only_a}+{c.n_only_b} unpaired)" if c.partial else ""
    return f"{c.diff:+.3g} [{c.ci_low:+.3g}, {c.ci_high:+.3g}] p_holm={t.p_holm:.2g}{star}{partial}"


def render_tested(tested: list[Tested]) -> str:
    if not tested:
        return ""
    lines = [("| family (tests) | comparison | metric | difference [95% CI] | n | p | "
              "p (Holm) | test |"), "|---|---|---|---|---|---|---|---|"]
    for t in tested:
        c = shown(t.result)
        n = f"{c.n}" + (f" (+{c.n_only_a}/{c.n_only_b} unpaired)" if c.partial else "")
        lines.append(f"| {t.family} ({t.family_size}) | {t.label_b} vs {t.label_a} | "
                     f"{c.metric} | {c.diff:+.3g} [{c.ci_low:+.3g}, {c.ci_high:+.3g}] | {n} | "
                     f"{c.p:.2g} | {t.p_holm:.2g}{' *' if t.significant else ''} | {c.test} |")
    return "\n".join(lines) + "\n"


HEADER = """# Results

Every number is `value [95% CI] n=items`: Wilson intervals for binary metrics (accuracies and
pass@1, in %), bootstrap over items for grades, log-probabilities and losses; the metric's kind
decides, never its values. A cell with several seeds prints `mean [95% CI] S seeds x n=items,
sd` with an interval from a two-level bootstrap (seeds, then items). `(floor)`: 0 of n; the
interval still bounds it. "General PROXY: held-out chat loss" is a proxy for general ability
(loss on chats never trained on), not MT-Bench; MT-Bench is shown only when a judge graded it.

`*` marks a difference from the base model (or, in Δ rows, between the paired rows) that is
significant at 0.05 after Holm correction within its family. Tests: with one seed per run,
exact McNemar for binary metrics and a paired sign-flip test otherwise, on the items both runs
scored; with several seeds, Welch's t over seeds (its null includes the seed-to-seed variance;
evals/stats.py). Each table names its tests and its families with their sizes.

Families are per question, per model and per kind of metric (headline, companions), and per
comparison type (vs base; the question's pairs): each question's table is one analysis a
reader may read alone, and its stars control the error rate of that table. So a comparison
that two questions make (math alone vs base is in rq1's and rq2's tables) gets two adjusted p
values, each corrected within its own table's family, whose sizes differ. The claims (at the
end) are one family of their own.
"""


def build_report(results: ResultSet) -> tuple[str, list[Tested], Cells, list]:
    cells = Cells(results)
    parts, tested_all = [HEADER], []
    for question in questions_present(cells):
        for model in cells.models:
            tested = [t for ts in families(question, model, cells).values() for t in ts]
            text = render_question(question, model, cells, tested)
            if text:
                parts += [text, render_question(question, model, cells, tested, "companions"),
                          "All comparisons of this table (B vs A, B minus A):\n",
                          render_tested(tested)]
                tested_all += tested
        parts.append(render_paper(question, cells))
    judged = {r["judged"] for r in cells.rows if r["metric"] == "mtbench/mean"}
    if judged == {False}:
        parts.append("MT-Bench: answers generated but not judged (no judge configured).\n")
    found = claim_module.evaluate_claims(results)
    parts.append(claim_module.render_claims(found))
    parts.append(render_provenance(cells.rows))
    parts.append(render_judges(cells))
    parts.append(render_budget(results.budget))
    return "\n".join(p for p in parts if p), tested_all, cells, found


def write_report(source: str | Storage | ResultSet, out: str | Path | None = None) -> Path:
    """report.md, report.json and figures into `out` (default: <storage>/report locally; for
    remote storage a local cache folder, uploaded to <storage>/report; for an export, its
    folder/report)."""
    results = source if isinstance(source, ResultSet) else ResultSet.from_storage(source)
    storage = results.storage
    out = report_folder(results, out)
    text, tested, cells, found = build_report(results)
    text += recommendation_section(out, results)
    (out / "report.md").write_text(text, encoding="utf-8")
    (out / "report.json").write_text(json.dumps(report_json(cells, tested, found), indent=1))
    write_figures(cells, out, storage)
    if storage is not None and not storage.is_local:
        storage.upload_dir(out, "report")
    return out


RECOMMENDATION = "recommendation.json"  # written by sweep.recommend beside the report


def report_folder(results: ResultSet, out: str | Path | None = None) -> Path:
    """Where the report goes: `out`, else <storage>/report locally, a local cache folder for a
    remote storage (uploaded after), or an export's folder/report."""
    storage = results.storage
    if out is not None:
        out = Path(out)
    elif storage is None:
        out = Path(results.origin) / "report"
    else:
        out = storage.local_path("report") if storage.is_local else storage.cache_dir() / "report"
    out.mkdir(parents=True, exist_ok=True)
    return out


def recommendation_section(out: Path, results: ResultSet) -> str:
    """sweep.recommend's last recommendation, if it wrote one here, with a note when runs have
    finished since (the fits do not re-run with every report)."""
    path = out / RECOMMENDATION
    if not path.is_file():
        return ""
    rec = json.loads(path.read_text())
    lines = recommend_markdown(rec, rec.get("titles"))
    runs_now = len({r["run_id"] for r in results.rows})
    if rec.get("runs") is not None and rec["runs"] != runs_now:
        lines.insert(2, f"(Fitted on {rec['runs']} runs; {runs_now} are in the results now: "
                        "`python -m sweep.recommend` refits.)\n")
    return "\n" + "\n".join(lines)


ROW_KEYS = ("run_id", "question", "model", "strategy", "amounts", "fraction", "k", "seed",
            "metric", "kind", "value", "n", "ci_low", "ci_high", "judged", "judge_snapshot",
            "isolation", "paper_value", "proxy", "stages")


def json_row(row: dict) -> dict:
    out = {k: row.get(k) for k in ROW_KEYS}
    out["amounts"] = {s: format_amount(a) for s, a in parse_recipe(row["amounts"])} \
        if row["amounts"] else {}
    out["provenance"] = provenance_of(row)
    return out


def report_json(cells: Cells, tested: list[Tested], claims: list | None = None) -> dict:
    rows = [json_row(r) for r in cells.rows]
    return {"rows": [r for r in rows if r["question"] != "base"],
            "base": [r for r in rows if r["question"] == "base"],
            "judge_snapshot": cells.judge,
            "set_aside_judges": {s: [json_row(r) for r in rs]
                                 for s, rs in sorted(cells.set_aside.items())},
            "comparisons": [t.to_dict() for t in tested],
            "claims": [c.to_dict() for c in claims or ()],
            "gpu_hours": cells.results.budget or {}}  # planned vs used per question
