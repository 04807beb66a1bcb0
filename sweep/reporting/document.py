"""The report as documents: report.md (one table per question shaped like the paper's, with the
base model's row, n and a 95% interval on every number, Holm-corrected paired tests against the
base model and between single and mixed at the same amount, the paper's numbers beside),
report.json, and the figures (sweep/reporting/figures.py). `python -m sweep.report` runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.ids import content_hash
from core.storage import Storage
from sweep.reporting import compare, tables
from sweep.reporting.budget import render_budget, stored_budget
from sweep.reporting.figures import write_figures
from sweep.reporting.results import read_results
from sweep.reporting.tables import (
    ABILITIES,
    BASE,
    COMPANION_TITLES,
    Cells,
    cell_text,
    grid_points,
    question_rows,
    questions_present,
)
from sweep.study import paper
from trainers.data.recipe import format_amount, parse_recipe

# ---- comparisons -----------------------------------------------------------------------------

def families(question: str, model: str, cells: Cells, storage: Storage, metrics_of):
    """{family name: [Tested]}: every run vs base, and the question's paired variants; the
    headline metrics form one family and the companions another, each Holm-corrected."""
    fs, ks = grid_points(cells)
    rows = question_rows(question, fs, ks)
    out = {}
    for kind, pick in (("headline", lambda a: [a.metric]), ("companions", metrics_of)):
        vs_base, paired = [], []
        for label, variants in rows:
            for ability in ABILITIES:
                for metric in pick(ability):
                    base = cells.get(model, BASE, metric)
                    spots = {v: fn(ability) for v, fn in variants.items()}
                    got = {v: cells.get(model, s, metric) for v, s in spots.items()}
                    for variant, cell in got.items():
                        if base and base.value is not None and cell and cell.value is not None:
                            vs_base.append(("base", base.run_ids, f"{label} {variant}".strip(),
                                            cell.run_ids, metric))
                    pair = tables.PAIRED_VARIANTS.get(question)
                    if pair and all(got[v] and got[v].value is not None for v in pair):
                        paired.append((f"{label} {pair[0]}", got[pair[0]].run_ids,
                                       f"{label} {pair[1]}", got[pair[1]].run_ids, metric))
        out[f"{question} {model}: vs base ({kind})"] = compare.tested_family(
            f"{question} {model}: vs base ({kind})", vs_base, storage)
        if question in tables.PAIRED_VARIANTS:
            name = f"{question} {model}: {' vs '.join(tables.PAIRED_VARIANTS[question])} ({kind})"
            out[name] = compare.tested_family(name, paired, storage)
    return out


def _companions(ability) -> list[str]:
    return list(ability.companions) + (["gsm8k/strict"] if ability.key == "gsm8k" else [])


# ---- Markdown --------------------------------------------------------------------------------

def render_question(question: str, model: str, cells: Cells, tested: list,
                    companions: bool = False) -> str:
    """Rows = amounts or strategies (one per column group: "single", "mixed"), then the paired
    differences; columns = abilities (headline metrics, or their companions)."""
    fs, ks = grid_points(cells)
    rows = question_rows(question, fs, ks)
    columns = [(COMPANION_TITLES[m], m) for a in ABILITIES for m in _companions(a)] \
        if companions else [(a.title, a.metric) for a in ABILITIES]
    by_metric = {m: a for a in ABILITIES for m in [a.metric, *_companions(a)]}
    columns = [(t, m) for t, m in columns
               if any((c := cells.get(model, fn(by_metric[m]), m)) and c.value is not None
                      for _, vs in rows for fn in vs.values())]
    if not columns:
        return ""
    sig = {(t.label_b, t.result.metric) for t in tested if t.significant and t.label_a == "base"}
    deltas = {(t.label_a, t.label_b, t.result.metric): t for t in tested if t.label_a != "base"}
    kind = "companions (low-variance)" if companions else "headline"
    lines = [f"### {tables.TITLES[question]}: {model}, {kind}", "",
             "| | " + " | ".join(t for t, _ in columns) + " |", "|---" * (len(columns) + 1) + "|",
             "| base model | " + " | ".join(cell_text(cells.get(model, BASE, m), m)
                                           for _, m in columns) + " |"]
    for label, variants in rows:
        for variant, fn in variants.items():
            name = f"{label} {variant}".strip()
            got = [cells.get(model, fn(by_metric[m]), m) for _, m in columns]
            if any(c and c.value is not None for c in got):
                lines.append(f"| {name} | " + " | ".join(
                    cell_text(c, m, " *" if (name, m) in sig else "")
                    for c, (_, m) in zip(got, columns, strict=True)) + " |")
    pair = tables.PAIRED_VARIANTS.get(question)
    for label, _ in rows if pair else ():
        ts = [deltas.get((f"{label} {pair[0]}", f"{label} {pair[1]}", m)) for _, m in columns]
        if any(ts):
            lines.append(f"| Δ {pair[1]} − {pair[0]}, {label} | "
                         + " | ".join(_delta_text(t) for t in ts) + " |")
    return "\n".join(lines) + "\n"


def _delta_text(t) -> str:
    if t is None:
        return "—"
    c = compare.shown(t.result)
    star = " *" if t.significant else ""
    return f"{c.diff:+.3g} [{c.ci_low:+.3g}, {c.ci_high:+.3g}] p_holm={t.p_holm:.2g}{star}"


def render_paper(question: str, cells: Cells) -> str:
    """The paper's published numbers for the same rows (LLaMA models only)."""
    fs, ks = grid_points(cells)
    lines = []
    for label, variants in question_rows(question, fs or paper.FRACTIONS, ks or paper.FRACTIONS):
        for variant, fn in variants.items():
            values = []
            for model in paper.MODELS:
                for ability in ABILITIES[:3]:
                    spot = fn(ability)
                    amount = spot.k if spot.strategy == "DMT" else spot.fraction
                    v = paper.paper_value(spot.questions[0], model, spot.strategy, amount,
                                          ability.key)
                    values.append("" if v is None else f"{v:g}")
            if any(values):
                lines.append(f"| {label} {variant} | " + " | ".join(values) + " |")
    if not lines:
        return ""
    head = [f"{m} {a.key}" for m in paper.MODELS for a in ABILITIES[:3]]
    return "\n".join(["The paper's numbers for these rows (LLaMA; not results of this project):",
                      "", "| | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|",
                      *lines]) + "\n"


def render_tested(tested: list) -> str:
    if not tested:
        return ""
    lines = ["| family | comparison | metric | difference [95% CI] | n | p | p (Holm) | test |",
             "|---|---|---|---|---|---|---|---|"]
    for t in tested:
        c = compare.shown(t.result)
        lines.append(f"| {t.family} | {t.label_b} vs {t.label_a} | {c.metric} | {c.diff:+.3g} "
                     f"[{c.ci_low:+.3g}, {c.ci_high:+.3g}] | {c.n} | {c.p:.2g} | "
                     f"{t.p_holm:.2g}{' *' if t.significant else ''} | {c.test} |")
    return "\n".join(lines) + "\n"


HEADER = """# Results

Every number is `value [95% CI] n=items`: Wilson intervals for accuracies (GSM8K, HumanEval, in
%), bootstrap over items for MT-Bench grades, log-probabilities and losses. Several seeds print
`mean ±sd (S seeds, n each)`. `*` marks a difference from the base model (or, in Δ columns,
between the paired columns) that is significant at 0.05 after Holm correction within the
question's family (exact McNemar for accuracies, paired sign-flip test otherwise). `(floor)`: 0
of n; the interval still bounds it. "general: held-out chat loss" is a PROXY for general ability
(loss on chats never trained on), not MT-Bench; MT-Bench is shown only when a judge graded it.
"""


def build_report(storage: Storage | str | Path) -> tuple[str, list, Cells]:
    storage = storage if isinstance(storage, Storage) else Storage(storage)
    cells = Cells(read_results(storage).to_pylist())
    parts, tested_all = [HEADER], []
    for question in questions_present(cells):
        for model in cells.models:
            fams = families(question, model, cells, storage, _companions)
            tested = [t for ts in fams.values() for t in ts]
            text = render_question(question, model, cells, tested)
            if text:
                parts += [text, render_question(question, model, cells, tested, True),
                          "All comparisons of this table (B vs A, B minus A):\n",
                          render_tested(tested)]
                tested_all += tested
        parts.append(render_paper(question, cells))
    judged = {r["judged"] for r in cells.rows if r["metric"] == "mtbench/mean"}
    if judged == {False}:
        parts.append("MT-Bench: answers generated but not judged (no judge configured).\n")
    parts.append(render_provenance(cells.rows))
    parts.append(render_judges(cells))
    parts.append(render_budget(stored_budget(storage)))
    return "\n".join(p for p in parts if p), tested_all, cells


def render_judges(cells: Cells) -> str:
    """Which judge graded MT-Bench (the snapshot its endpoint reported), and the grades of
    other judges, set aside from the tables: two judges' grades are not comparable."""
    if cells.judge is None:
        return ""
    lines = [f"MT-Bench judge: `{cells.judge}` (the model snapshot its endpoint reported).\n"]
    if cells.set_aside:
        lines += [(f"**MT-Bench was judged by more than one snapshot; the tables show only "
                   f"`{cells.judge}`'s grades.** Grades of other judges are not comparable and "
                   "are listed here apart (rerun those runs with the same judge to compare):\n"),
                  "| judge snapshot | run | MT-Bench (1-10) |", "|---|---|---|"]
        for snapshot, rows in sorted(cells.set_aside.items()):
            for r in rows:
                cell = tables.Cell(r["value"], r["ci_low"], r["ci_high"], r["n"], 1, None,
                                   (r["run_id"],))
                lines.append(f"| {snapshot} | {r['run_id']} | "
                             f"{cell_text(cell, 'mtbench/mean')} |")
    return "\n".join(lines) + "\n"


def write_report(storage: str | Storage, out: str | Path | None = None) -> Path:
    """report.md, report.json and figures into `out` (default: <storage>/report locally; for
    remote storage a local cache folder), and for remote storage uploaded to <storage>/report."""
    storage = storage if isinstance(storage, Storage) else Storage(storage)
    out = Path(out) if out is not None else (
        storage.local_path("report") if storage.is_local else storage.cache_dir() / "report")
    out.mkdir(parents=True, exist_ok=True)
    text, tested, cells = build_report(storage)
    (out / "report.md").write_text(text, encoding="utf-8")
    (out / "report.json").write_text(json.dumps(
        report_json(cells, tested, stored_budget(storage)), indent=1))
    write_figures(cells, out, storage)
    if not storage.is_local:
        storage.upload_dir(out, "report")
    return out


ROW_KEYS = ("run_id", "question", "model", "strategy", "amounts", "fraction", "k", "seed",
            "metric", "value", "n", "ci_low", "ci_high", "judged", "judge_snapshot",
            "isolation", "paper_value")


def json_row(row: dict) -> dict:
    out = {k: row.get(k) for k in ROW_KEYS}
    out["amounts"] = {s: format_amount(a) for s, a in parse_recipe(row["amounts"])} \
        if row["amounts"] else {}
    out["provenance"] = provenance_of(row)
    return out


def provenance_of(row: dict) -> dict:
    """Where a row came from (sweep.execution.provenance); nulls for results written before it existed."""
    sources = row.get("sources")
    return {"code_version": row.get("code_version"), "code_dirty": row.get("code_dirty"),
            "preset": row.get("preset"), "base_model": row.get("model"), "seed": row.get("seed"),
            "sources": None if sources is None else json.loads(sources),
            "libraries": {lib: row.get(f"{lib}_version")
                          for lib in ("torch", "transformers", "ray", "deepspeed")},
            "judge_snapshot": row.get("judge_snapshot")}


def render_provenance(rows: list[dict]) -> str:
    """One short section for the whole report: the code, libraries, sources and judge behind
    the runs, and where runs differ, every distinct value with how many runs have it."""
    runs: dict[str, dict] = {}
    for r in rows:
        runs.setdefault(r["run_id"], r)
    if not runs:
        return ""

    def code(r):
        if r.get("code_version") is None:
            return "unknown (written before provenance was recorded)"
        return r["code_version"] + (" (dirty)" if r.get("code_dirty") else "")

    def libraries(r):
        return ", ".join(f"{lib} {r.get(f'{lib}_version') or '-'}"
                         for lib in ("torch", "transformers", "ray", "deepspeed"))

    def sources(r):
        if not r.get("sources"):
            return "unknown"
        fields = json.loads(r["sources"])  # the full identity is in report.json and results
        return (", ".join(f"{n}={f.get('location')}" for n, f in sorted(fields.items()))
                + f" (identity {content_hash(fields)[:8]})")

    facets = (("code", code), ("libraries", libraries), ("sources", sources),
              ("judge snapshot", lambda r: r.get("judge_snapshot") or "none"))
    lines = ["## Provenance", ""]
    for name, value_of in facets:
        counts: dict[str, int] = {}
        for r in runs.values():
            counts[value_of(r)] = counts.get(value_of(r), 0) + 1
        if len(counts) == 1:
            lines.append(f"- {name}: {next(iter(counts))}")
        else:
            lines.append(f"- runs differ in {name}:")
            lines += [f"  - {v} ({n} run{'s' if n > 1 else ''})" for v, n in sorted(counts.items())]
    lines.append(f"- presets: {', '.join(sorted({r.get('preset') or '?' for r in runs.values()}))}")
    return "\n".join(lines) + "\n"


def report_json(cells: Cells, tested: list, gpu_hours: dict | None = None) -> dict:
    rows = [json_row(r) for r in cells.rows]
    return {"rows": [r for r in rows if r["question"] != "base"],
            "base": [r for r in rows if r["question"] == "base"],
            "judge_snapshot": cells.judge,
            "set_aside_judges": {s: [json_row(r) for r in rs]
                                 for s, rs in sorted(cells.set_aside.items())},
            "comparisons": [t.to_dict() for t in tested],
            "gpu_hours": gpu_hours or {}}  # sweep.reporting.budget: planned vs used per question
