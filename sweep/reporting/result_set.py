"""What every analysis reads (the report, the claims, and the fits built on them): a sweep's
result rows and per-item outcomes, from its storage or from an export folder, in one shape.

`ResultSet.from_storage(S)` reads `results/` and `items/`; `ResultSet.from_export(DIR)` reads
`runs.csv` and `items.csv` as `python -m sweep.report --storage S --export DIR` writes them (or
as anyone writes them: only run_id, question, model, strategy, fraction, k, seed, the
`amount_<source>` columns, metric, value and n are needed; intervals empty in runs.csv are
recomputed from items.csv). `export(DIR)` writes them; docs/RESULTS_FORMAT.md has the columns.
    python -m sweep.report --storage ./runs/local --export ./export
    python -m sweep.report --results ./export
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from core.storage import Storage
from evals.stats import interval
from sweep.reporting.budget import stored_budget
from sweep.reporting.results import (
    SCHEMA,
    metric_kind,
    read_items,
    read_results,
    scale,
)
from trainers.data.recipe import format_amount, make_recipe, parse_amount, parse_recipe

RUNS_CSV, ITEMS_CSV, BUDGET_JSON = "runs.csv", "items.csv", "gpu_hours.json"
AMOUNT_PREFIX = "amount_"
REQUIRED = ("run_id", "question", "model", "strategy", "fraction", "k", "seed", "metric",
            "value", "n")
LIST_SEP = " -> "  # stages in runs.csv: each stage's recipe, in order


@dataclass
class ResultSet:
    """Result rows (SCHEMA's columns, `kind` always set) and per-item outcomes by run."""

    rows: list[dict]
    origin: str  # the storage URI or the export folder
    budget: dict = field(default_factory=dict)  # planned vs used GPU hours (sweep/reporting/budget)
    _items: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    _storage: Storage | None = None

    @classmethod
    def from_storage(cls, storage: Storage | str) -> ResultSet:
        storage = storage if isinstance(storage, Storage) else Storage(storage)
        rows = [_complete(r) for r in read_results(storage).to_pylist()]
        return cls(rows, storage.uri, stored_budget(storage), _storage=storage)

    @classmethod
    def from_export(cls, folder: str | Path) -> ResultSet:
        folder = Path(folder)
        for name in (RUNS_CSV, ITEMS_CSV):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name}: no such file (an export writes "
                                        f"{RUNS_CSV} and {ITEMS_CSV})")
        items = _read_items_csv(folder / ITEMS_CSV)
        rows = [_complete(r) for r in _read_runs_csv(folder / RUNS_CSV, items)]
        budget = json.loads((folder / BUDGET_JSON).read_text()) \
            if (folder / BUDGET_JSON).is_file() else {}
        return cls(rows, str(folder), budget, _items=items)

    @classmethod
    def load(cls, storage: str | None, results: str | None) -> ResultSet:
        """`--storage S` or `--results DIR`, as every analysis command takes them."""
        if results:
            return cls.from_export(results)
        return cls.from_storage(storage or "./runs/local")

    @property
    def storage(self) -> Storage | None:
        """The storage read (None for an export): stage manifests and the like live there."""
        return self._storage

    def items(self, run_id: str) -> dict[str, dict[str, float]]:
        """{metric: {item: value}} of one run; an error naming the run when it has none."""
        if run_id not in self._items:
            if self._storage is None:
                raise FileNotFoundError(f"{self.origin}: no per-item results for run {run_id}")
            self._items[run_id] = read_items(self._storage, run_id)
        return self._items[run_id]

    def seeds_of(self, run_ids: list[str], metric: str) -> list[dict[str, float]]:
        """One {item: value} per run (seed) that scored `metric`."""
        return [self.items(r)[metric] for r in run_ids if metric in self.items(r)]

    def export(self, folder: str | Path) -> Path:
        """runs.csv, items.csv (and the GPU-hour budget) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        _write_runs_csv(folder / RUNS_CSV, self.rows)
        with (folder / ITEMS_CSV).open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["run_id", "metric", "item", "value"])
            for run_id in sorted({r["run_id"] for r in self.rows}):
                for metric, values in sorted(self.items(run_id).items()):
                    for item, value in sorted(values.items()):
                        out.writerow([run_id, metric, item, repr(float(value))])
        if self.budget:
            (folder / BUDGET_JSON).write_text(json.dumps(self.budget, indent=1))
        return folder


# ---- rows made whole ----------------------------------------------------------------------------

def _complete(row: dict) -> dict:
    """Every SCHEMA column present; the kind set (built-in metrics from their table); `proxy`
    "full" where no cheaper setting is recorded."""
    out = {name: row.get(name) for name in SCHEMA.names}
    out.update({k: v for k, v in row.items() if k not in out})
    out["kind"] = metric_kind(out)
    out["proxy"] = out.get("proxy") or "full"
    out["higher_is_better"] = True if out.get("higher_is_better") is None \
        else bool(out["higher_is_better"])
    if out.get("judged") is None:
        out["judged"] = out.get("value") is not None
    return out


# ---- runs.csv -----------------------------------------------------------------------------------

def _sources(rows: list[dict]) -> list[str]:
    names = set()
    for r in rows:
        names.update(s for s, _ in parse_recipe(r["amounts"])) if r.get("amounts") else None
    return sorted(names)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return LIST_SEP.join(value)
    return str(value)


def _write_runs_csv(path: Path, rows: list[dict]) -> None:
    sources = _sources(rows)
    columns = [c for c in SCHEMA.names if c != "amounts"]
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(columns + [AMOUNT_PREFIX + s for s in sources])
        for r in rows:
            amounts = dict(parse_recipe(r["amounts"])) if r.get("amounts") else {}
            out.writerow([_cell(r.get(c)) for c in columns]
                         + [format_amount(amounts[s]) if s in amounts else "" for s in sources])


def _read_items_csv(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    items: dict[str, dict[str, dict[str, float]]] = {}
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"run_id", "metric", "item", "value"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: no column {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                value = float(row["value"])
            except ValueError:
                raise ValueError(f"{path}:{line}: value {row['value']!r} is not a number") \
                    from None
            if not math.isfinite(value):
                raise ValueError(f"{path}:{line}: run {row['run_id']}, {row['metric']}, item "
                                 f"{row['item']!r}: value {row['value']!r} is not a number")
            items.setdefault(row["run_id"], {}).setdefault(row["metric"], {})[row["item"]] = value
    return items


def _read_runs_csv(path: Path, items: Mapping[str, Mapping[str, Mapping[str, float]]]) -> list:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{path}: required columns missing: {missing}")
        amount_columns = [c for c in reader.fieldnames if c.startswith(AMOUNT_PREFIX)]
        return [_row(path, line, raw, amount_columns, items)
                for line, raw in enumerate(reader, start=2)]


def _row(path, line, raw: dict, amount_columns: list[str], items) -> dict:
    where = f"{path}:{line}"
    row = {k: (v if v != "" else None) for k, v in raw.items() if not k.startswith(AMOUNT_PREFIX)}
    amounts = [(c.removeprefix(AMOUNT_PREFIX), parse_amount(raw[c])) for c in amount_columns
               if raw[c] not in ("", "0")]
    row["amounts"] = ",".join(f"{s}={format_amount(a)}" for s, a in make_recipe(amounts)) \
        if amounts else ""
    for name in ("fraction", "k"):
        if row.get(name) is not None:
            row[name] = format_amount(Fraction(row[name]))
    row["seed"] = int(row.get("seed") or 0)
    for name in ("value", "ci_low", "ci_high", "paper_value", "tokens_trained", "wall_hours",
                 "gpu_hours", "tokens_in_stages"):
        row[name] = _number(row.get(name), where, name)
    row["n"] = None if row.get("n") is None else int(float(row["n"]))
    for name in ("judged", "code_dirty", "higher_is_better"):
        if row.get(name) is not None:
            row[name] = row[name].lower() in ("true", "1", "yes")
    for name in ("stages", "stage_ids"):
        row[name] = [] if not row.get(name) else row[name].split(
            LIST_SEP if name == "stages" else " ")
    if row["value"] is not None and row.get("ci_low") is None:
        _interval_from_items(row, items, where)
    return row


def _number(text, where: str, name: str):
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: {name} {text!r} is not a number") from None


def _interval_from_items(row: dict, items, where: str) -> None:
    """n and the 95% interval recomputed from items.csv, as the engine computes them."""
    values = list((items.get(row["run_id"]) or {}).get(row["metric"], {}).values())
    if not values:
        raise ValueError(f"{where}: run {row['run_id']}, {row['metric']}: no interval and no "
                         "items in items.csv to compute one")
    kind = metric_kind(row)
    _, lo, hi, n = interval(values, kind)
    row["ci_low"], row["ci_high"], row["n"] = scale(kind, lo), scale(kind, hi), n
