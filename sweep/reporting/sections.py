"""The report's sections beside the question tables: the paper's published numbers for the same
rows, the MT-Bench judge (and the grades of other judges, set aside), and provenance.
"""

from __future__ import annotations

import json

from core.ids import content_hash
from sweep.reporting.tables import Cell, Cells, cell_text, question_rows
from sweep.study import paper


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
                cell = Cell(r["value"], r["ci_low"], r["ci_high"], r["n"], 1, None,
                            (r["run_id"],), kind=r["kind"])
                lines.append(f"| {snapshot} | {r['run_id']} | {cell_text(cell)} |")
    return "\n".join(lines) + "\n"




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




def render_paper(question: str, cells: Cells) -> str:
    """The paper's published numbers for the same rows (LLaMA models; only where the paper's
    sources and evaluations are used)."""
    rows, _ = question_rows(question, cells)
    lines = []
    for row in rows:
        spot = row.spot
        amount = spot.k if spot.strategy == "DMT" else spot.fraction
        if question == "rq4" and spot.fraction is not None:
            continue  # rq4 on a part of every source: not the paper's cell
        values = [paper.paper_value(spot.questions[0], model, spot.strategy, amount, metric)
                  for model in paper.MODELS for metric in paper.METRICS]
        if any(v is not None for v in values):
            lines.append(f"| {row.label} | " + " | ".join("" if v is None else f"{v:g}"
                                                          for v in values) + " |")
    if not lines:
        return ""
    head = [f"{m} {metric}" for m in paper.MODELS for metric in paper.METRICS]
    return "\n".join(["The paper's numbers for these rows (LLaMA; not results of this project):",
                      "", "| | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|",
                      *lines]) + "\n"
