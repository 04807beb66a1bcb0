"""What the driver holds while a stage's data is built: the Ray Data path (trainers/data/pipeline,
small keys per record on the driver) beside the BASELINE, a copy of the old path kept here (the
driver reads, validates and selects every record, Ray Data only tokenizes), in one command.

Writes the built-in synthetic corpora scaled to --records (math 2 : code 1 : general 1), then
builds the same stage with each path in its own driver process (after a small warm-up build, so
imports and worker start-up are not counted) and prints, per path: the driver's peak private RSS
(RssAnon, sampled every 0.1 s) during the build above its level before it, per record read, object-store peak (sampled), records read per second
(build + one pass over the rows), and the ratios new / baseline. The baseline may run on fewer
records (--baseline-records) where the full size would not fit; per-record numbers compare. Run:
    python benchmarks/data_driver_memory.py --records 1000000 --fraction 1/8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.settings import DEFAULT_TEMPLATE

SOURCES = ("math", "code", "general")


# ---- the baseline: the driver-side path as it was before issue 10 -----------------------------

def baseline_build(recipe, specs, tokenizer_name, *, seed, epochs, max_len, overlong="truncate"):
    """The old build_stage_dataset: every record read, validated and selected on the driver,
    then handed to Ray Data (from_items) only to tokenize."""
    import ray

    from trainers.data.data_report import build_data_report as _report
    from trainers.data.ordering import default_blocks
    from trainers.data.pipeline import tokenize_rows
    from trainers.data.recipe import format_amount
    from trainers.data.records import Rejects
    from trainers.data.selection import select
    from trainers.data.sources import read_records

    ray.data.DataContext.get_current().execution_options.preserve_order = True
    selected, counts = [], []
    for source, amount in recipe:
        spec, rejects = specs[source], Rejects()
        records = read_records(spec, rejects=rejects)
        chosen = select(records, amount, seed, source)
        selected.extend({**r, "source": source} for r in chosen)
        counts.append({"name": source, "location": spec.location, "amount": format_amount(amount),
                       "read": len(records) + rejects.total, "kept": len(records),
                       "rejects": rejects.to_dict(), "selected": len(chosen)})
    rows = [{"source": r["source"], "id": r["id"], "messages": r["messages"]} for r in selected]
    tokenized = (
        ray.data.from_items(rows, override_num_blocks=default_blocks(len(rows)))
        .map_batches(tokenize_rows, batch_format="numpy", zero_copy_batch=False,
                     fn_kwargs={"tokenizer_name": tokenizer_name, "max_len": max_len,
                                "overlong": overlong, "template": DEFAULT_TEMPLATE})
        .materialize()
    )
    outcome = tokenized.select_columns(["source", "id", "n_tokens", "truncated",
                                        "reject_reason"]).to_pandas()
    report = _report(recipe, counts, outcome, seed=seed, epochs=epochs, max_len=max_len,
                     overlong=overlong, tokenizer_name=tokenizer_name)
    kept = outcome[outcome["reject_reason"] == ""]
    pairs = list(zip(kept["source"], kept["id"]))
    return baseline_order_epochs(tokenized, pairs, seed, epochs), report


def baseline_order_epochs(tokenized, pairs, seed: int, epochs: int):
    """The old epoch ordering: blocks cut into per-chunk pieces by Ray tasks (pieces under Ray's
    100 KiB inline limit come back into the driver's heap), then merged."""
    import numpy as np
    import ray

    from trainers.data.ordering import default_blocks
    from trainers.data.selection import order_key

    block_refs = tokenized.to_arrow_refs()
    n_chunks = default_blocks(len(pairs))
    chunk_rows = -(-len(pairs) // n_chunks)
    split = ray.remote(_baseline_split_block).options(num_returns=n_chunks)
    merge = ray.remote(_baseline_merge_chunk)
    chunk_refs = []
    for epoch in range(epochs):
        keys = ray.put(np.array(sorted(order_key(seed, epoch, s, i) for s, i in pairs),
                                dtype="S32"))
        parts = [split.remote(ref, epoch, seed, keys, chunk_rows, n_chunks) for ref in block_refs]
        parts = [p if n_chunks > 1 else [p] for p in parts]
        chunk_refs += [merge.remote(*[p[c] for p in parts]) for c in range(n_chunks)]
    return ray.data.from_arrow_refs(chunk_refs)


def _baseline_split_block(table, epoch, seed, sorted_keys, chunk_rows, n_chunks):
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from trainers.data.ordering import ROW_COLUMNS
    from trainers.data.selection import order_key

    table = table.filter(pc.equal(table["reject_reason"], ""))
    keys = np.array([order_key(seed, epoch, s, i) for s, i in
                     zip(table["source"].to_pylist(), table["id"].to_pylist())], dtype="S32")
    position = np.searchsorted(sorted_keys, keys).astype(np.int64)
    table = table.append_column("epoch", pa.array(np.full(len(keys), epoch, dtype=np.int64)))
    table = table.append_column("position", pa.array(position)).select(ROW_COLUMNS)
    chunk = position // chunk_rows
    parts = [table.filter(pa.array(chunk == c)) for c in range(n_chunks)]
    return parts if n_chunks > 1 else parts[0]


def _baseline_merge_chunk(*parts):
    import pyarrow as pa

    return pa.concat_tables(parts).sort_by("position")


# ---- one measured build, in its own driver process --------------------------------------------

class Peaks:
    """Samples the driver's resident memory and the node's object-store bytes in use (what
    `ray memory --stats-only` reads) while a build runs."""

    def __init__(self, every_s: float = 0.1):
        self.peak, self.missed, self.every_s = 0, 0, every_s
        self.rss_peak = _rss_now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        import ray
        from ray._private.internal_api import get_memory_info_reply, get_state_from_address

        state = get_state_from_address(ray.get_runtime_context().gcs_address)
        while not self._stop.is_set():
            self.rss_peak = max(self.rss_peak, _rss_now())
            try:
                stats = get_memory_info_reply(state, timeout_seconds=5).store_stats
                self.peak = max(self.peak, stats.object_store_bytes_used)
            except Exception:  # noqa: BLE001 - any failed sample (RPC timeouts included)
                self.missed += 1  # reported: with misses the peak is a floor
            self._stop.wait(self.every_s)


def _rss_now() -> int:
    """The driver's private resident memory now (RssAnon, Linux): its own heap. Object-store
    pages the driver maps to read a block are shared memory, counted as the object store."""
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["RssAnon"].split()[0]) * 1024


def _build_and_read(build, recipe, specs, tokenizer: str, max_len: int):
    return _read_rows(*build(recipe, specs, tokenizer, seed=0, epochs=1, max_len=max_len))


def _read_rows(dataset, report) -> tuple[int, int]:
    rows = sum(len(b["n_tokens"]) for b in
               dataset.iter_batches(batch_size=1024, batch_format="numpy"))
    assert rows == report.rows_per_epoch
    return rows, sum(s.read for s in report.sources)


def measure(path: str, corpora: str, fraction: Fraction, tokenizer: str, max_len: int,
            cpus: int) -> dict:
    import ray

    from trainers.data.corpora import folder_specs
    from trainers.data.pipeline import build_stage_dataset
    from trainers.data.recipe import make_recipe

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="bench-mem-ray-"))
    ray.data.DataContext.get_current().enable_progress_bars = False
    specs = folder_specs(corpora)
    recipe = make_recipe([(s, fraction) for s in SOURCES])
    build = build_stage_dataset if path == "ray_data" else baseline_build
    warm = Path(tempfile.mkdtemp(prefix="bench-mem-warm-"))  # imports, tokenizer, Ray workers
    write_corpora(warm, 2000)
    _build_and_read(build, recipe, folder_specs(warm), tokenizer, max_len)
    rss_start = _rss_now()
    start = time.perf_counter()
    with Peaks() as peaks:  # the build alone: reading the rows is the trainers' work
        dataset, report = build(recipe, specs, tokenizer, seed=0, epochs=1, max_len=max_len)
    rows, read = _read_rows(dataset, report)
    seconds = time.perf_counter() - start
    ray.shutdown()
    return {"path": path, "read": read, "rows": rows, "seconds": seconds,
            "driver_rss_per_record": (peaks.rss_peak - rss_start) / read,
            "driver_rss_peak": peaks.rss_peak, "object_store_peak": peaks.peak,
            "store_samples_missed": peaks.missed,
            "records_per_s": read / seconds}


# ---- the command ------------------------------------------------------------------------------

def write_corpora(directory: Path, records: int) -> float:
    from trainers.data.corpora import DEFAULT_SIZES, write_builtin_corpora

    total = sum(DEFAULT_SIZES[s] for s in SOURCES)
    sizes = {s: records * DEFAULT_SIZES[s] // total for s in SOURCES}
    start = time.perf_counter()
    write_builtin_corpora(directory, {**sizes, "math_test": 10, "general_test": 10})
    return time.perf_counter() - start


def run_in_child(args, path: str, corpora: Path) -> dict:
    """One path in a fresh driver process, so each peak RSS is that path's alone."""
    command = [sys.executable, __file__, "--child", path, "--corpora", str(corpora),
               "--fraction", str(args.fraction), "--tokenizer", args.tokenizer,
               "--max-len", str(args.max_len), "--cpus", str(args.cpus)]
    out = subprocess.run(command, check=False, capture_output=True, text=True)
    if out.returncode != 0:  # the child's own error, not a bare CalledProcessError
        raise SystemExit(f"the {path} path failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _line(m: dict) -> str:
    return (f"{m['path']:9s} read {m['read']:8d}  used {m['rows']:7d}  {m['seconds']:7.1f} s  "
            f"{m['records_per_s']:8.0f} records/s  driver RSS +{m['driver_rss_per_record']:7.0f} "
            f"B/record (private peak {m['driver_rss_peak'] / 2**20:6.0f} MiB)  object store peak "
            f"{m['object_store_peak'] / 2**20:6.0f} MiB ({m['store_samples_missed']} samples "
            "missed)")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--baseline-records", type=int, default=None,
                   help="records for the baseline path (default: --records)")
    p.add_argument("--fraction", type=Fraction, default=Fraction(1, 8))
    p.add_argument("--cpus", type=int, default=2)
    p.add_argument("--tokenizer", default="tiny_llama")
    p.add_argument("--max-len", type=int, default=2048)
    p.add_argument("--child", choices=["ray_data", "baseline"], help=argparse.SUPPRESS)
    p.add_argument("--corpora", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child, args.corpora, args.fraction, args.tokenizer,
                                 args.max_len, args.cpus)))
        return
    work = Path(tempfile.mkdtemp(prefix="bench-mem-"))
    sizes = {"ray_data": args.records, "baseline": args.baseline_records or args.records}
    results = {}
    for path in ("ray_data", "baseline"):
        corpora = work / f"corpora-{sizes[path]}"
        if not corpora.exists():
            took = write_corpora(corpora, sizes[path])
            print(f"wrote {sizes[path]} synthetic records in {took:.1f} s")
        results[path] = run_in_child(args, path, corpora)
        print(_line(results[path]), flush=True)
    new, old = results["ray_data"], results["baseline"]
    print(f"recipe {args.fraction} of each of {SOURCES}, {args.cpus} CPUs, max_len {args.max_len}")
    for name in ("driver_rss_per_record", "object_store_peak", "records_per_s"):
        print(f"ratio new / baseline, {name}: {new[name] / max(old[name], 1e-9):.3f}")


if __name__ == "__main__":
    main()
