"""The report: Markdown tables shaped like the paper's Tables 1-6 and PNG figures shaped like its
Figures 2-6, from the results table, with the paper's number beside each measured one
("41.9 (paper 41.92)"; "—" where a run has not finished, "not judged" without a judge).
    python -m sweep.report [--storage ./runs/local] [--out DIR]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

from sweep import paper
from sweep.results import read_results
from trainers.storage import Storage

ABILITIES = (("gsm8k/flexible", "GSM8K", "gsm8k"), ("humaneval/pass@1", "HumanEval", "humaneval"),
             ("mtbench/mean", "MT-Bench", "mtbench"))
RQ1_RUN = {"gsm8k": "math only", "humaneval": "code only", "mtbench": "general only"}
DASH = "—"


class Cells:
    """The results as (question, model, strategy, fraction, k, metric) -> row."""

    def __init__(self, rows: Sequence[dict]):
        self.rows = {(r["question"], r["model"], r["strategy"], r["fraction"], r["k"],
                      r["metric"]): r for r in rows}
        self.models = sorted({r["model"] for r in rows})

    def get(self, question, model, strategy, fraction, k, metric) -> dict | None:
        return self.rows.get((question, model, strategy, _t(fraction), _t(k), metric))


def _t(x: Fraction | None) -> str | None:
    return None if x is None else f"{x.numerator}/{x.denominator}"


def _num(v: float) -> str:
    return f"{v:.2f}" if abs(v) < 10 else f"{v:.1f}"


def cell_text(row: dict | None, paper_value: float | None) -> str:
    if row is None:
        measured = DASH
    elif row["value"] is None:
        measured = "not judged" if not row["judged"] else DASH
    else:
        measured = _num(row["value"])
    return measured if paper_value is None else f"{measured} (paper {paper_value:g})"


# A table row: label, then per ability (question, strategy, fraction, k) or None for "-".
def table1_rows(ks=(Fraction(1, 256),)):
    rows = [(s, [("rq4", s, None, None)] * 3) for s in paper.RQ4_STRATEGIES]
    rows += [(f"DMT (k={k})", [("rq4", "DMT", None, k)] * 3) for k in ks]
    return rows


def table23_rows():
    rows = []
    for f in paper.FRACTIONS:
        rows.append((f"Single (f={f})",
                     [("rq1", RQ1_RUN[ref], f, None) for _, _, ref in ABILITIES]))
    rows += [(f"Mix (f={f})", [("rq2", "mix", f, None)] * 3) for f in paper.FRACTIONS]
    return rows


def table4_rows():
    return [(f"{setup} (f={f})", [("rq3", setup, f, None)] * 3)
            for setup in paper.RQ3_SETUPS for f in paper.FRACTIONS]


def table6_rows():
    return [(f"Mix, general w/o code/math (f={f})", [("ablation", "mix", f, None)] * 3)
            for f in paper.FRACTIONS]


def render_table(title: str, rows, cells: Cells, paper_models: Sequence[str]) -> str:
    models = list(cells.models) + [m for m in paper_models if m not in cells.models]
    head = ["strategy"] + [f"{m} {name}" for m in models for _, name, _ in ABILITIES]
    out = [f"### {title}", "", "| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]
    for label, spots in rows:
        line = [label]
        for model in models:
            for (metric, _, ref), spot in zip(ABILITIES, spots, strict=True):
                question, strategy, f, k = spot
                row = cells.get(question, model, strategy, f, k, metric)
                amount = k if strategy == "DMT" else f
                ref_value = paper.paper_value(question, model, strategy, amount, ref)
                line.append(cell_text(row, ref_value))
        out.append("| " + " | ".join(line) + " |")
    return "\n".join(out) + "\n"


def render_tables(cells: Cells, ks: Sequence[Fraction]) -> str:
    m3 = paper.MODELS
    parts = [
        "# Results beside the paper's numbers",
        "",
        ("Measured values first; `(paper X)` is Dong et al.'s published number for the same "
         "cell (LLaMA models only), never a result of this project. GSM8K is the flexible "
         "(answer-extraction) accuracy in %, HumanEval pass@1 in %, MT-Bench the judge's mean "
         "grade (1-10). — marks a run that has not finished."),
        "",
        render_table("Table 1: training strategies", table1_rows(), cells, m3),
        render_table("Tables 2-3: single source vs mixed source", table23_rows(), cells, m3),
        render_table("Table 4: ratio setups (LLaMA-7B in the paper)", table4_rows(), cells,
                     m3[:1]),
        render_table("Table 5: DMT with k", table1_rows(ks), cells, m3[:2]),
        render_table("Table 6: ablation without code/math in ShareGPT", table6_rows(), cells,
                     m3[:1]),
    ]
    strict = [r for r in cells.rows.values() if r["metric"] == "gsm8k/strict"]
    if strict:
        parts.append(f"GSM8K strict (`####` form only) is in the results table too "
                     f"({len(strict)} runs).\n")
    return "\n".join(parts)


def _series(cells: Cells, question, strategy, model, metric, xs, by_k=False):
    pts = []
    for x in xs:
        row = cells.get(question, model, strategy, None if by_k else x, x if by_k else None,
                        metric)
        if row is not None and row["value"] is not None:
            pts.append((x, row["value"]))
    return pts


def _plot_lines(ax, lines, title, ylabel):
    for label, pts, style in lines:
        if pts:
            ax.plot([math.log2(x) for x, _ in pts], [y for _, y in pts], style, label=label,
                    marker="o")
    ax.set_title(title)
    ax.set_xlabel("log2(fraction of data)")
    ax.set_ylabel(ylabel)
    if any(pts for _, pts, _ in lines):
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no values yet\n(not run, or not judged)", ha="center",
                va="center", transform=ax.transAxes)


def figure(path: Path, panels) -> None:
    """panels: [(title, ylabel, [(label, [(x, y)], style)])]; x on a log2 axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for ax, (title, ylabel, lines) in zip(axes[0], panels, strict=True):
        _plot_lines(ax, lines, title, ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _paper_series(question, strategy, metric_ref, xs, by_k=False):
    out = []
    for model in paper.MODELS:
        pts = [(x, v) for x in xs if (v := paper.paper_value(question, model, strategy, x,
                                                             metric_ref)) is not None]
        out.append((f"paper {model}", pts, "--"))
    return out


def ability_panels(cells: Cells, setups, xs, by_k=False):
    """One panel per ability; setups: [(label, question, strategy_of(ref))]."""
    panels = []
    for metric, name, ref in ABILITIES:
        lines = []
        for label, question, strategy_of in setups:
            for model in cells.models:
                pts = _series(cells, question, strategy_of(ref), model, metric, xs, by_k)
                lines.append((f"{label} {model}", pts, "-"))
            if len(setups) == 1:
                lines += _paper_series(question, strategy_of(ref), ref, xs, by_k)
        panels.append((name, name, lines))
    return panels


def write_figures(cells: Cells, out: Path, ks: Sequence[Fraction],
                  storage: Storage | None = None) -> list[Path]:
    fs = paper.FRACTIONS
    specs = {
        "fig2_rq1_single_source.png": ability_panels(
            cells, [("single", "rq1", RQ1_RUN.get)], fs),
        "fig3_rq2_mixed_vs_single.png": ability_panels(
            cells, [("single", "rq1", RQ1_RUN.get), ("mixed", "rq2", lambda _: "mix")], fs),
        "fig4_rq3_ratio_setups.png": ability_panels(
            cells, [(s, "rq3", lambda _, s=s: s) for s in paper.RQ3_SETUPS], fs),
        "fig6_ablation.png": ability_panels(
            cells, [("mix", "rq2", lambda _: "mix"), ("mix w/o code/math", "ablation",
                                                       lambda _: "mix")], fs),
        "fig8_dmt_k.png": ability_panels(cells, [("DMT", "rq4", lambda _: "DMT")], ks,
                                         by_k=True),
    }
    written = []
    for name, panels in specs.items():
        figure(out / name, panels)
        written.append(out / name)
    if storage is not None:
        titles = {r["run_id"]: f"{r['model']}: {r['strategy']}" + (f" (k={r['k']})" if r["k"]
                                                                   else "")
                  for r in cells.rows.values() if r["question"] == "tsne"}
        written += write_tsne(storage, out, titles)
    return written


def write_tsne(storage: Storage, out: Path, titles: dict[str, str] | None = None) -> list[Path]:
    """Figure 5: the coordinates evals.representations wrote for each t-SNE run, one panel
    per run (base model, DMT(1/256)), coloured by source."""
    import pyarrow.parquet as pq

    names = [n for n in storage.list("representations") if n.endswith(".parquet")]
    if not names:
        return []
    panels = []
    for name in sorted(names):
        t = pq.read_table(storage.path(f"representations/{name}"), filesystem=storage.fs)
        run_id = name.removesuffix(".parquet")
        panels.append(((titles or {}).get(run_id, run_id), t.to_pydict()))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, (title, data) in zip(axes[0], panels, strict=True):
        for source in sorted(set(data["source"])):
            idx = [i for i, s in enumerate(data["source"]) if s == source]
            ax.scatter([data["x"][i] for i in idx], [data["y"][i] for i in idx], s=8,
                       label=source)
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "fig5_tsne.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def write_report(storage: str | Storage, out: str | Path | None = None) -> Path:
    """Tables (report.md) and figures (PNG) into `out` (default: <storage>/report locally)."""
    storage = storage if isinstance(storage, Storage) else Storage(storage)
    if out is None:
        out = storage.local_path("report") if storage.is_local else Path("report")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = read_results(storage).to_pylist()
    cells = Cells(rows)
    ks = sorted({Fraction(r["k"]) for r in rows if r["k"]} | set(paper.FRACTIONS), reverse=True)
    (out / "report.md").write_text(render_tables(cells, ks), encoding="utf-8")
    write_figures(cells, out, ks, storage)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sweep.report", description=__doc__)
    p.add_argument("--storage", default="./runs/local", help="the sweep's storage (path or URI)")
    p.add_argument("--out", help="where to write report.md and the PNGs")
    args = p.parse_args(argv)
    print(f"report: {write_report(args.storage, args.out)}")


if __name__ == "__main__":
    main()
