"""The results table: one parquet dataset in the run storage, a row per run and metric.

Each finished run writes its own small file, `results/<run_id>.parquet`, atomically (a temp
file renamed locally; one put on object stores), so a sweep killed at any moment loses no
finished result; the directory reads back as one table. Values are in the paper's units:
GSM8K and HumanEval in percent, MT-Bench on its 1-10 scale, null where no judge graded; every
value carries n and a 95% interval (Wilson for accuracies, bootstrap over items otherwise).
Per-item outcomes go beside it, `items/<run_id>.parquet` (run_id, metric, item, value), so any
two runs can be compared item by item later, on any machine (sweep.reporting.compare).
    python -c "from sweep.reporting.results import read_results; print(read_results('./runs/local'))"
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from core.storage import Storage
from evals.spec import kinds_of
from evals.stats import interval
from sweep.study import paper
from sweep.study.grid import Run
from trainers.data.recipe import format_recipe

RESULTS_DIR = "results"

SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("preset", pa.string()),
    ("question", pa.string()),
    ("model", pa.string()),
    ("strategy", pa.string()),
    ("amounts", pa.string()),  # the last stage's recipe, "code=1/4,general=1/4,math=1/4"
    ("fraction", pa.string()),  # "p/q": the figure's x-axis (rq1-rq3, ablation)
    ("k", pa.string()),  # "p/q": DMT's k
    ("seed", pa.int64()),  # replicate seed (sweep.planning.plan.seeded); 0 = the preset's own seeds
    ("stage_ids", pa.list_(pa.string())),
    ("metric", pa.string()),  # "gsm8k/strict", "humaneval/pass@1", "mtbench/mean", ...
    ("value", pa.float64()),  # null: not judged (MT-Bench without a judge) or not measured
    ("judged", pa.bool_()),
    ("judge_snapshot", pa.string()),  # MT-Bench: the judge's exact model, as its endpoint said
    ("isolation", pa.string()),  # HumanEval: the sandbox's, "bwrap" or "rlimits (unsafe)"
    ("n", pa.int64()),  # examples behind the value
    ("ci_low", pa.float64()),  # 95% interval, same units as value
    ("ci_high", pa.float64()),
    ("tokens_trained", pa.int64()),  # over the stages this run trained itself (0 if all reused)
    ("tokens_in_stages", pa.int64()),  # over all its stages, trained here or reused
    ("wall_hours", pa.float64()),
    ("gpu_hours", pa.float64()),
    ("paper_value", pa.float64()),  # the paper's number for this cell (sweep.study.paper), if any
    # Provenance (sweep.execution.provenance), the same for every row of a sweep; null in result files
    # written before it was recorded (read_results fills missing columns with nulls).
    ("code_version", pa.string()),  # "git:<commit>" or "package:<version>"
    ("code_dirty", pa.bool_()),  # tracked files differed from the commit; null outside git
    ("sources", pa.string()),  # JSON: each source as stage ids identify it (content included)
    ("model_content", pa.string()),  # the base model's content identity (sweep/planning/resolution.py)
    ("torch_version", pa.string()),  # null: not installed
    ("transformers_version", pa.string()),
    ("ray_version", pa.string()),
    ("deepspeed_version", pa.string()),
    # How the metric is read (null in results written before: metric_kind() knows the built-in
    # ones): "binary" (0/1 per item: Wilson, exact McNemar, shown in %) or "continuous".
    ("kind", pa.string()),
    ("higher_is_better", pa.bool_()),  # null: higher (all but losses and perplexities)
    ("stages", pa.list_(pa.string())),  # each stage's recipe, in order (null: before)
    ("proxy", pa.string()),  # "full", or the cheaper setting that trained the run (null: full)
])
# The judge's snapshot is provenance too, but per row (it graded MT-Bench rows only): the
# `judge_snapshot` column above.
PROVENANCE_COLUMNS = ("code_version", "code_dirty", "sources", "model_content", "torch_version",
                      "transformers_version", "ray_version", "deepspeed_version")

# Which of our metrics the paper's columns report (GSM8K: maj@1 accuracy with answer
# extraction, closest to our flexible score; strict is shown beside it).
PAPER_METRIC = {"gsm8k/strict": "gsm8k", "gsm8k/flexible": "gsm8k",
                "humaneval/pass@1": "humaneval", "mtbench/mean": "mtbench"}


ITEMS_DIR = "items"
ITEM_SCHEMA = pa.schema([("run_id", pa.string()), ("metric", pa.string()),
                         ("item", pa.string()), ("value", pa.float64())])


@dataclass(frozen=True)
class Measurement:
    metric: str
    value: float | None
    judged: bool = True
    kind: str = "continuous"
    n: int | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    judge_snapshot: str | None = None
    isolation: str | None = None
    higher_is_better: bool = True


@dataclass(frozen=True)
class RunCost:
    tokens_trained: int
    tokens_in_stages: int
    wall_hours: float
    gpu_hours: float


def fmt(x) -> str | None:
    return None if x is None else f"{x.numerator}/{x.denominator}"


def provenance_columns(provenance: Mapping | None) -> dict:
    """sweep.execution.provenance.sweep_provenance() as the table's columns (all null when None)."""
    prov = dict(provenance or {})
    libs = prov.get("libraries") or {}
    sources = prov.get("sources")
    return {"code_version": prov.get("code_version"), "code_dirty": prov.get("code_dirty"),
            "sources": None if sources is None else json.dumps(sources, sort_keys=True),
            **{f"{lib}_version": libs.get(lib)
               for lib in ("torch", "transformers", "ray", "deepspeed")}}


def at_paper_scale(run: Run) -> bool:
    """rq4 on a part of every source (the local preset's 1/4) is not the paper's cell."""
    return not (run.question == "rq4" and run.fraction is not None)


def rows_for(run: Run, run_id: str, preset: str, stage_ids: Sequence[str],
             measurements: Sequence[Measurement], cost: RunCost,
             provenance: Mapping | None = None, proxy: str = "full") -> list[dict]:
    """The run's rows in SCHEMA, with the paper's value wherever paper.py has the cell and the
    sweep's provenance (sweep.execution.provenance) on every row."""
    amount = run.k if run.strategy == "DMT" else run.fraction
    prov = provenance_columns(provenance)
    rows = []
    for m in measurements:
        ref = PAPER_METRIC.get(m.metric)
        rows.append({
            "run_id": run_id, "preset": preset, "question": run.question, "model": run.model,
            "strategy": run.strategy, "amounts": run.amounts_text, "fraction": fmt(run.fraction),
            "k": fmt(run.k), "seed": run.seed, "stage_ids": list(stage_ids), "metric": m.metric,
            "value": None if m.value is None else float(m.value), "judged": bool(m.judged),
            "judge_snapshot": m.judge_snapshot, "isolation": m.isolation, "n": m.n,
            "ci_low": m.ci_low, "ci_high": m.ci_high,
            "tokens_trained": cost.tokens_trained,
            "tokens_in_stages": cost.tokens_in_stages, "wall_hours": cost.wall_hours,
            "gpu_hours": cost.gpu_hours,
            "paper_value": ref and at_paper_scale(run) and paper.paper_value(
                run.question, run.model, run.strategy, amount, ref),
            "kind": m.kind, "higher_is_better": m.higher_is_better,
            "stages": [format_recipe(s.recipe) for s in run.stages], "proxy": proxy,
            **prov, "model_content": (provenance or {}).get("models", {}).get(run.model),
        })
    return rows


# evals.run's metric names -> the results table's; each has per-item outcomes behind it, so
# each gets n and an interval. Scores in [0, 1] are printed in percent, as the paper does.
METRIC_NAMES = {("gsm8k", "accuracy_strict"): "gsm8k/strict",
                ("gsm8k", "accuracy_flexible"): "gsm8k/flexible",
                ("gsm8k", "ref_logprob"): "gsm8k/ref_logprob",
                ("humaneval", "pass@1"): "humaneval/pass@1",
                ("humaneval", "ref_logprob"): "humaneval/ref_logprob",
                ("humanevalplus", "pass@1"): "humanevalplus/pass@1",
                ("humanevalplus", "ref_logprob"): "humanevalplus/ref_logprob",
                ("mtbench", "score"): "mtbench/mean",
                ("general_loss", "general_loss"): "general/loss"}
# The built-in metrics' kinds, for results written before rows carried theirs.
BUILTIN_KINDS = {"gsm8k/strict": "binary", "gsm8k/flexible": "binary",
                 "humaneval/pass@1": "binary", "humanevalplus/pass@1": "binary",
                 "gsm8k/ref_logprob": "continuous", "humaneval/ref_logprob": "continuous",
                 "humanevalplus/ref_logprob": "continuous", "mtbench/mean": "continuous",
                 "general/loss": "continuous"}
LOWER_IS_BETTER = {"general/loss"}  # losses; everything else (accuracy, log-prob) is higher


def metric_name(evaluation: str, key: str) -> str | None:
    """evals.run's (eval, metric key) -> the results table's name: the built-in table, or
    `TASK/METRIC` for an lm-evaluation-harness task (`lm-eval:TASK`). Per-turn and
    per-category MT-Bench grades, counts and bookkeeping stay in the eval's own records."""
    if evaluation.startswith("lm-eval:"):
        return f"{evaluation.removeprefix('lm-eval:')}/{key}"
    return METRIC_NAMES.get((evaluation, key))


def metric_kind(row: Mapping) -> str:
    """A result row's kind: its own, else the built-in table's; an error for a metric neither
    knows (its interval and test would otherwise be guessed from its values)."""
    kind = row.get("kind") or BUILTIN_KINDS.get(row["metric"])
    if kind is None:
        raise ValueError(f"run {row.get('run_id')}: metric {row['metric']!r} has no kind "
                         "(binary or continuous)")
    return kind


def scale(kind: str, value: float | None) -> float | None:
    """Raw eval units -> the table's: a binary metric (a share of 0/1 outcomes) in percent."""
    return None if value is None else (100.0 * value if kind == "binary" else float(value))


def items_of(out: dict) -> dict[str, dict[str, float]]:
    """Per-item outcomes by results metric: {metric: {item id: raw value}}."""
    by_metric: dict[str, dict[str, float]] = {}
    for name, result in out.items():
        for row in result.get("items") or ():
            metric = metric_name(name, row["metric"])
            if metric is not None and row.get("value") is not None:
                by_metric.setdefault(metric, {})[str(row["item"])] = float(row["value"])
    return by_metric


def measurements_of(out: dict) -> list[Measurement]:
    """evaluate()'s {eval: {"metrics", "items", "judged"?}} as rows in the paper's units, each
    with n and a 95% interval computed from its per-item outcomes; an MT-Bench without a judge
    gives a null mean marked not judged, never a number."""
    items = items_of(out)
    rows = []
    for name, result in out.items():
        judged = bool(result.get("judged", True))
        marks = {"judge_snapshot": (result.get("judge") or {}).get("snapshot") if judged else None,
                 "isolation": result.get("isolation")}
        for key, value in (result.get("metrics") or {}).items():
            metric = metric_name(name, key)
            if metric is None or (value is None and judged):
                continue
            kind = kinds_of(result).get(key) or BUILTIN_KINDS.get(metric, "continuous")
            better = metric not in LOWER_IS_BETTER and (result.get("higher_is_better") or
                                                         {}).get(key, True)
            if not judged:
                rows.append(Measurement(metric, None, False, kind, higher_is_better=better))
                continue
            per_item = list(items.get(metric, {}).values())
            if not per_item:
                raise ValueError(f"{name}/{key}: no per-item outcomes, so no interval")
            _, lo, hi, n = interval(per_item, kind)
            rows.append(Measurement(metric, scale(kind, value), True, kind, n,
                                    scale(kind, lo), scale(kind, hi), higher_is_better=better,
                                    **marks))
    return rows


def item_rows(run_id: str, out: dict) -> list[dict]:
    return [{"run_id": run_id, "metric": metric, "item": item, "value": value}
            for metric, values in sorted(items_of(out).items())
            for item, value in sorted(values.items())]


def write_items(storage: Storage | str, run_id: str, rows: Sequence[Mapping]) -> str:
    """One run's per-item outcomes, into the sweep's storage (not a node's disk)."""
    return _write_table(_storage(storage), f"{ITEMS_DIR}/{run_id}.parquet",
                        pa.Table.from_pylist([dict(r) for r in rows], schema=ITEM_SCHEMA))


def read_items(storage: Storage | str, run_id: str) -> dict[str, dict[str, float]]:
    """{metric: {item: value}} of one run; an error naming the file when it has none."""
    storage = _storage(storage)
    rel = f"{ITEMS_DIR}/{run_id}.parquet"
    if not storage.exists(rel):
        raise FileNotFoundError(f"{storage.uri_of(rel)}: no per-item results for run {run_id}")
    table = pq.read_table(storage.path(rel), filesystem=storage.fs, schema=ITEM_SCHEMA)
    out: dict[str, dict[str, float]] = {}
    for row in table.to_pylist():
        out.setdefault(row["metric"], {})[row["item"]] = row["value"]
    return out


def result_path(run_id: str) -> str:
    return f"{RESULTS_DIR}/{run_id}.parquet"


def read_result(storage: Storage | str, run_id: str) -> list[dict]:
    """One run's rows (FileNotFoundError when it has none)."""
    storage = _storage(storage)
    if not has_result(storage, run_id):
        raise FileNotFoundError(f"{storage.uri_of(result_path(run_id))}: no result")
    return pq.read_table(storage.path(result_path(run_id)), filesystem=storage.fs,
                         schema=SCHEMA).to_pylist()


def has_result(storage: Storage | str, run_id: str) -> bool:
    return _storage(storage).exists(result_path(run_id))


def write_result(storage: Storage | str, run_id: str, rows: Sequence[Mapping]) -> str:
    """Write one run's rows; atomic, so a reader never sees half a file. Returns its URI."""
    if not rows:
        raise ValueError(f"run {run_id}: no result rows to write (no metric was measured)")
    table = pa.Table.from_pylist([dict(r) for r in rows], schema=SCHEMA)
    return _write_table(_storage(storage), result_path(run_id), table)


def _write_table(storage: Storage, rel: str, table: pa.Table) -> str:
    buf = io.BytesIO()
    pq.write_table(table, buf)
    storage.write_bytes(rel, buf.getvalue())
    return storage.uri_of(rel)


def read_results(storage: Storage | str) -> pa.Table:
    """Every finished run's rows as one table (empty, with SCHEMA, before any run finished).
    Temp files of writers that died mid-write start with '.' and are not read."""
    storage = _storage(storage)
    names = [n for n in storage.list(RESULTS_DIR)
             if n.endswith(".parquet") and not n.startswith(".")]
    if not names:
        return SCHEMA.empty_table()
    tables = []
    for name in names:
        path = storage.path(f"{RESULTS_DIR}/{name}")
        try:
            tables.append(pq.read_table(path, filesystem=storage.fs, schema=SCHEMA))
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{storage.uri_of(RESULTS_DIR + '/' + name)}: unreadable result "
                             f"file ({e}); delete it to rerun that run") from e
    return pa.concat_tables(tables)


def _storage(storage: Storage | str) -> Storage:
    return storage if isinstance(storage, Storage) else Storage(storage)
