"""The report's figures: one PNG per question, a panel per ability, error bars on every point.

Points are the question's rows (fractions or strategies) with their 95% intervals, one series
per column group (single / mixed, ...); the base model is a dashed line with its interval
shaded. Figure 5 (t-SNE) draws the coordinates evals.representations wrote.
    python -m sweep.report --storage ./runs/local     # writes them beside report.md
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import pyarrow.parquet as pq

from core.storage import Storage
from sweep.reporting.tables import BASE, Cells, question_rows, questions_present

FILES = {"rq1": "fig2_rq1_single_source.png", "rq2": "fig3_rq2_mixed_vs_single.png",
         "rq3": "fig4_rq3_ratio_setups.png", "rq4": "table1_rq4_strategies.png",
         "ablation": "fig6_ablation.png"}


def _plt():
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: light command (pyplot only when drawing)

    return plt


def _panel(ax, model, ability, rows, cells: Cells) -> bool:
    """One ability: each row's point with its error bar, the base model as a band."""
    xs, ys, lo, hi, labels = [], [], [], [], []
    for x, row in enumerate(rows):
        cell = cells.get(model, row.spot, ability.metric)
        labels.append(row.label)
        if cell and cell.value is not None:
            xs.append(x)
            ys.append(cell.value)
            lo.append(cell.value - cell.ci_low)
            hi.append(cell.ci_high - cell.value)
    drawn = bool(xs)
    if xs:
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=4, label=model)
    base = cells.get(model, BASE, ability.metric)
    if base and base.value is not None:
        ax.axhline(base.value, color="grey", linestyle="--", label="base model")
        ax.axhspan(base.ci_low, base.ci_high, color="grey", alpha=0.15)
        drawn = True
    ax.set_xticks(range(len(rows)), labels, rotation=35, fontsize=6, ha="right")
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_title(ability.title, fontsize=8)
    if drawn:
        ax.legend(fontsize=7)
    return drawn


def question_figure(path: Path, question: str, model: str, cells: Cells) -> bool:
    rows, _ = question_rows(question, cells)
    abilities = [a for a in cells.abilities
                 if any((c := cells.get(model, r.spot, a.metric)) and c.value is not None
                        for r in rows)]
    if not abilities:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(abilities), figsize=(4.5 * len(abilities), 4.2),
                             squeeze=False)
    for ax, ability in zip(axes[0], abilities, strict=True):
        _panel(ax, model, ability, rows, cells)
    fig.suptitle(f"{question}: {model} (95% intervals)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_figures(cells: Cells, out: Path, storage: Storage | None = None) -> list[Path]:
    written = []
    for question in questions_present(cells):
        for model in cells.models:
            suffix = "" if len(cells.models) == 1 else f"_{model}"
            path = out / FILES[question].replace(".png", f"{suffix}.png")
            if question_figure(path, question, model, cells):
                written.append(path)
    if storage is not None:
        titles = {r["run_id"]: f"{r['model']}: {r['strategy']}" + (f" (k={r['k']})" if r["k"]
                                                                   else "")
                  for r in cells.rows if r["question"] == "tsne"}
        written += write_tsne(storage, out, titles)
    return written


def write_tsne(storage: Storage, out: Path, titles: dict[str, str] | None = None) -> list[Path]:
    """Figure 5: the coordinates evals.representations wrote for each t-SNE run, one panel
    per run (base model, DMT(1/256)), coloured by source."""
    names = [n for n in storage.list("representations") if n.endswith(".parquet")]
    if not names:
        return []
    panels = []
    for name in sorted(names):
        t = pq.read_table(storage.path(f"representations/{name}"), filesystem=storage.fs)
        run_id = name.removesuffix(".parquet")
        panels.append(((titles or {}).get(run_id, run_id), t.to_pydict()))
    plt = _plt()
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


def recommendation_figure(rec: dict, titles: dict, out: Path) -> Path | None:
    """Each ability with signal: the chosen fit's leave-one-out prediction of every observed
    composition against what was observed (with its 95% interval), the diagonal for reference."""
    metrics = list(rec.get("loo") or {})
    if not metrics:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4), squeeze=False)
    for ax, metric in zip(axes[0], metrics, strict=True):
        points = rec["loo"][metric]
        observed = [p["observed"] for p in points]
        ax.errorbar([p["predicted"] for p in points], observed,
                    yerr=[1.96 * p["se"] for p in points], fmt="o", ms=4, capsize=2)
        low, high = min(observed), max(observed)
        ax.plot([low, high], [low, high], color="grey", lw=1, ls="--")
        ax.set_xlabel(f"predicted out of fold ({rec['chosen'][metric]})")
        ax.set_ylabel("observed")
        ax.set_title(titles.get(metric, metric), fontsize=9)
    fig.tight_layout()
    path = out / "fig_recommendation.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
