"""The results table: one parquet dataset in the run storage, a row per run and metric.

Each finished run writes its own small file, `results/<run_id>.parquet`, atomically (a temp
file renamed locally; one put on object stores), so a sweep killed at any moment loses no
finished result; the directory reads back as one table. Values are in the paper's units:
GSM8K and HumanEval in percent, MT-Bench on its 1-10 scale, null where no judge graded.
    python -c "from sweep.results import read_results; print(read_results('./runs/local'))"
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from sweep import paper
from sweep.grid import Run
from trainers.storage import Storage

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
    ("stage_ids", pa.list_(pa.string())),
    ("metric", pa.string()),  # "gsm8k/strict", "humaneval/pass@1", "mtbench/mean", ...
    ("value", pa.float64()),  # null: not judged (MT-Bench without a judge) or not measured
    ("judged", pa.bool_()),
    ("n", pa.int64()),  # examples behind the value
    ("tokens_trained", pa.int64()),  # over the stages this run trained itself (0 if all reused)
    ("tokens_in_stages", pa.int64()),  # over all its stages, trained here or reused
    ("wall_hours", pa.float64()),
    ("gpu_hours", pa.float64()),
    ("paper_value", pa.float64()),  # the paper's number for this cell (sweep.paper), if any
])

# Which of our metrics the paper's columns report (GSM8K: maj@1 accuracy with answer
# extraction, closest to our flexible score; strict is shown beside it).
PAPER_METRIC = {"gsm8k/strict": "gsm8k", "gsm8k/flexible": "gsm8k",
                "humaneval/pass@1": "humaneval", "mtbench/mean": "mtbench"}


@dataclass(frozen=True)
class Measurement:
    metric: str
    value: float | None
    judged: bool = True
    n: int | None = None


@dataclass(frozen=True)
class RunCost:
    tokens_trained: int
    tokens_in_stages: int
    wall_hours: float
    gpu_hours: float


def fmt(x) -> str | None:
    return None if x is None else f"{x.numerator}/{x.denominator}"


def rows_for(run: Run, run_id: str, preset: str, stage_ids: Sequence[str],
             measurements: Sequence[Measurement], cost: RunCost) -> list[dict]:
    """The run's rows in SCHEMA, with the paper's value wherever paper.py has the cell."""
    amount = run.k if run.strategy == "DMT" else run.fraction
    rows = []
    for m in measurements:
        ref = PAPER_METRIC.get(m.metric)
        rows.append({
            "run_id": run_id, "preset": preset, "question": run.question, "model": run.model,
            "strategy": run.strategy, "amounts": run.amounts_text, "fraction": fmt(run.fraction),
            "k": fmt(run.k), "stage_ids": list(stage_ids), "metric": m.metric,
            "value": None if m.value is None else float(m.value), "judged": bool(m.judged),
            "n": m.n, "tokens_trained": cost.tokens_trained,
            "tokens_in_stages": cost.tokens_in_stages, "wall_hours": cost.wall_hours,
            "gpu_hours": cost.gpu_hours,
            "paper_value": ref and paper.paper_value(run.question, run.model, run.strategy,
                                                     amount, ref),
        })
    return rows


# evals.run's metric names -> the results table's, and which are scores in [0, 1] that the
# paper prints in percent.
METRIC_NAMES = {("gsm8k", "accuracy_strict"): "gsm8k/strict",
                ("gsm8k", "accuracy_flexible"): "gsm8k/flexible",
                ("humaneval", "pass@1"): "humaneval/pass@1",
                ("humanevalplus", "pass@1"): "humanevalplus/pass@1",
                ("mtbench", "score"): "mtbench/mean", ("mtbench", "score_std"): "mtbench/sd"}
PERCENT = {"gsm8k/strict", "gsm8k/flexible", "humaneval/pass@1", "humanevalplus/pass@1"}


def metric_name(evaluation: str, key: str) -> str | None:
    if (evaluation, key) in METRIC_NAMES:
        return METRIC_NAMES[(evaluation, key)]
    if evaluation == "mtbench" and (key.startswith(("turn_", "category/"))):
        return f"mtbench/{key.replace('score_std', 'sd')}"
    return None  # counts and bookkeeping (problems, passed, isolation) stay in the records


def measurements_of(out: dict) -> list[Measurement]:
    """evaluate()'s {eval: {"metrics", "counts", "judged"?}} as rows in the paper's units; an
    MT-Bench without a judge gives a null mean marked not judged, never a number."""
    rows = []
    for name, result in out.items():
        judged = bool(result.get("judged", True))
        counts = result.get("counts") or {}
        n = counts.get("problems", counts.get("questions"))
        for key, value in (result.get("metrics") or {}).items():
            metric = metric_name(name, key)
            if metric is None or (value is None and judged):
                continue
            if value is not None and metric in PERCENT:
                value = 100.0 * value
            rows.append(Measurement(metric, value if judged else None, judged, n))
    return rows


def result_path(run_id: str) -> str:
    return f"{RESULTS_DIR}/{run_id}.parquet"


def has_result(storage: Storage | str, run_id: str) -> bool:
    return _storage(storage).exists(result_path(run_id))


def write_result(storage: Storage | str, run_id: str, rows: Sequence[Mapping]) -> str:
    """Write one run's rows; atomic, so a reader never sees half a file. Returns its URI."""
    storage = _storage(storage)
    if not rows:
        raise ValueError(f"run {run_id}: no result rows to write (no metric was measured)")
    table = pa.Table.from_pylist([dict(r) for r in rows], schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    rel = result_path(run_id)
    if storage.is_local:
        target = storage.local_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    else:
        storage.fs.create_dir(storage.path(RESULTS_DIR), recursive=True)
        with storage.fs.open_output_stream(storage.path(rel)) as f:
            f.write(buf.getvalue())
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
