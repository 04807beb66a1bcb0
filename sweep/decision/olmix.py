"""`sweep.recommend --export-olmix DIR`: one-stage runs as Olmix reads earlier mixtures.

ratios.csv: run_id and one weight per source, by tokens, summing to 1; metrics.csv: run_id and
one column per metric. A run's tokens per source are the ones its stage's data report measured
(the stage manifest in storage) where the storage is at hand, else the plan's estimate (samples
x mean tokens of each source, sweep/planning/source_sizes.py); export.json says which, run by
run. Staged runs are left out (Olmix mixes one stage) and counted.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from sweep.decision.observations import composition_of_row
from sweep.study.candidates import NotInSpace


def measured_tokens(storage, stage_id: str) -> dict[str, float] | None:
    """Tokens per source of one stage, from its manifest's data report (None: not found)."""
    rel = f"stages/{stage_id}/manifest.json"
    if storage is None or not storage.exists(rel):
        return None
    report = storage.read_json(rel).get("data_report") or {}
    return {s["name"]: float(s["tokens"]["total"]) for s in report.get("sources", ())} or None


def export_olmix(rows: Sequence[dict], out: str | Path, storage=None,
                 source_tokens: Mapping[str, float] | None = None) -> dict:
    """Write ratios.csv, metrics.csv and export.json into `out`; what was written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, dict] = {}
    left_out: dict[str, int] = {}
    for row in rows:
        run = runs.setdefault(row["run_id"], {"row": row, "metrics": {}})
        if row.get("value") is not None:
            run["metrics"][row["metric"]] = row["value"]
    ratios, how = {}, {}
    for run_id, run in runs.items():
        try:
            composition = composition_of_row(run["row"])
        except NotInSpace:
            left_out["not in the candidate space"] = left_out.get("not in the candidate space",
                                                                  0) + 1
            continue
        if composition.strategy != "mix":
            reason = "base model" if not composition.amounts else "staged (not one mixture)"
            left_out[reason] = left_out.get(reason, 0) + 1
            continue
        tokens = measured_tokens(storage, (run["row"].get("stage_ids") or [None])[0])
        if tokens is None and source_tokens is None:
            left_out["no token counts"] = left_out.get("no token counts", 0) + 1
            continue
        ratios[run_id] = _normalised(tokens) if tokens else composition.token_ratios(
            source_tokens)
        how[run_id] = "measured (stage data report)" if tokens else "estimated (plan)"
    sources = sorted({s for r in ratios.values() for s in r})
    metrics = sorted({m for run_id in ratios for m in runs[run_id]["metrics"]})
    _write(out / "ratios.csv", ["run_id", *sources],
           ([run_id, *[ratios[run_id].get(s, 0.0) for s in sources]] for run_id in ratios))
    _write(out / "metrics.csv", ["run_id", *metrics],
           ([run_id, *[runs[run_id]["metrics"].get(m, "") for m in metrics]]
            for run_id in ratios))
    summary = {"runs": len(ratios), "sources": sources, "metrics": metrics,
               "tokens": how, "left_out": left_out}
    (out / "export.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _normalised(tokens: Mapping[str, float]) -> dict[str, float]:
    total = sum(tokens.values())
    return {s: t / total for s, t in sorted(tokens.items())}


def _write(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
