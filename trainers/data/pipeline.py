"""A stage's training data as a Ray Data dataset: read, validate, select, union, order, tokenize.

The driver reads and selects (exact hashing needs each source's full id list); Ray Data tokenizes
(`map_batches`, streaming), then lays out every epoch in its seeded order, a sort by
sha256(seed, epoch, source, id): exact on any block layout. Train workers get the whole dataset
and keep rows with `position % world_size == rank` (`iter_worker_rows`). Try it:
    python -m trainers.data --recipe "math=1/256,code=1/256,general=1/256"
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from trainers.data.recipe import Recipe, format_amount, format_recipe
from trainers.data.records import Rejects
from trainers.data.selection import order_key, select
from trainers.data.sources import SourceSpec, read_records

ROW_COLUMNS = ["epoch", "position", "source", "id", "input_ids", "labels", "n_tokens"]


@dataclass(frozen=True)
class TokenStats:
    samples: int = 0
    total: int = 0
    mean: float = 0.0
    p95: int = 0
    max: int = 0

    @classmethod
    def of(cls, n_tokens: Iterable[int]) -> TokenStats:
        arr = np.asarray(list(n_tokens), dtype=np.int64)
        if not len(arr):
            return cls()
        p95 = int(np.percentile(arr, 95, method="higher"))
        return cls(len(arr), int(arr.sum()), round(float(arr.mean()), 2), p95, int(arr.max()))


@dataclass(frozen=True)
class SourceReport:
    """One source: rows read = kept + rejected; selected of kept; format rejects of selected."""

    name: str
    location: str
    amount: str
    read: int
    kept: int
    rejects: dict
    selected: int
    format_rejects: dict
    truncated: int
    used: int
    tokens: TokenStats


@dataclass(frozen=True)
class DataReport:
    recipe: str
    seed: int
    epochs: int
    max_len: int
    overlong: str
    tokenizer: str
    sources: tuple[SourceReport, ...]
    rows_per_epoch: int
    tokens: TokenStats  # over the samples of one epoch (each record once)
    truncated: int
    dropped: int  # selected samples left out at tokenization (format rejects, over-long drops)

    def to_dict(self) -> dict:
        return asdict(self)

    def format(self) -> str:
        lines = [(f"recipe {self.recipe}  seed {self.seed}  epochs {self.epochs}  "
                 f"max_len {self.max_len} ({self.overlong})  tokenizer {self.tokenizer}")]
        for s in self.sources:
            lines.append(f"[{s.name}] {s.location}  amount {s.amount}")
            lines.append(f"  read {s.read}  kept {s.kept}  rejected {s.read - s.kept}  "
                         f"selected {s.selected}  used {s.used}  truncated {s.truncated}")
            lines.append(Rejects.from_dict(s.rejects).report("  "))
            if s.format_rejects:
                lines.append(f"  format rejects: {s.format_rejects}")
            lines.append(f"  tokens {_stats(s.tokens)}")
        lines.append(f"total: {self.rows_per_epoch} rows per epoch, tokens {_stats(self.tokens)}, "
                     f"truncated {self.truncated}, dropped {self.dropped}")
        return "\n".join(lines)


def _stats(t: TokenStats) -> str:
    return f"total {t.total}  mean {t.mean}  p95 {t.p95}  max {t.max}"


HELD_OUT = frozenset({"math_test", "general_test"})  # the built-in corpora's test splits


# ---- driver side: read, validate, select -------------------------------------------------------

def select_sources(recipe: Recipe, specs: dict[str, SourceSpec], seed: int, strict: bool = False,
                   max_chars: int | None = None) -> tuple[list[dict], list[dict]]:
    """(selected records of every source, per-source read/kept/rejected/selected counts)."""
    selected, counts = [], []
    for source, amount in recipe:
        if source not in specs:
            raise KeyError(f"recipe names source {source!r}; known: {sorted(specs)}")
        if source in HELD_OUT:  # evaluation items: training on them would void every score
            raise ValueError(f"recipe names {source!r}, a held-out test split; never train on it")
        spec, rejects = specs[source], Rejects()
        records = read_records(spec, strict=strict, rejects=rejects, max_chars=max_chars)
        chosen = select(records, amount, seed, source)
        selected.extend({**r, "source": source} for r in chosen)
        counts.append({"name": source, "location": spec.location, "amount": format_amount(amount),
                       "read": len(records) + rejects.total, "kept": len(records),
                       "rejects": rejects.to_dict(), "selected": len(chosen)})
    return selected, counts


# ---- Ray Data side: tokenize, then lay out the epochs ------------------------------------------

@functools.lru_cache(maxsize=4)
def _tokenizer(name: str):
    # One load per Ray worker process: task workers are reused, so this is a per-process cache.
    from trainers.model import load_tokenizer

    return load_tokenizer(name)


def _tokenize(batch: dict, tokenizer_name: str, max_len: int, overlong: str):
    """tokenize_batch, returned as an Arrow table with list<int64> token columns: left to Ray,
    a block whose rows happen to be equally long becomes a fixed-shape tensor column, and its
    chunks would no longer concatenate with the variable-shaped ones."""
    import pyarrow as pa

    from trainers.data.formatting import tokenize_batch

    out = tokenize_batch(batch, _tokenizer(tokenizer_name), max_len, overlong)
    tokens = {k: pa.array(list(out[k]), type=pa.list_(pa.int64())) for k in ("input_ids", "labels")}
    return pa.table({k: tokens.get(k, v) for k, v in out.items()})


def _report(recipe, counts, outcome, *, seed, epochs, max_len, overlong, tokenizer_name):
    sources = []
    for c in counts:
        mine = outcome[outcome["source"] == c["name"]]
        ok = mine[mine["reject_reason"] == ""]
        fr = Counter(mine.loc[mine["reject_reason"] != "", "reject_reason"])
        sources.append(SourceReport(**c, format_rejects=dict(sorted(fr.items())),
                                    truncated=int(ok["truncated"].sum()), used=len(ok),
                                    tokens=TokenStats.of(ok["n_tokens"])))
    kept = outcome[outcome["reject_reason"] == ""]
    return DataReport(format_recipe(recipe), seed, epochs, max_len, overlong, tokenizer_name,
                      tuple(sources), len(kept), TokenStats.of(kept["n_tokens"]),
                      int(kept["truncated"].sum()), len(outcome) - len(kept))


def build_stage_dataset(
    recipe: Recipe, specs: dict[str, SourceSpec], tokenizer_name: str, *, seed: int, epochs: int,
    max_len: int = 2048, overlong: str = "truncate", strict: bool = False,
    max_chars: int | None = None, num_blocks: int | None = None,
):
    """(dataset with ROW_COLUMNS, ordered by (epoch, position), DataReport).

    Tokenization runs once per selected record (a streaming `map_batches`) and is materialized,
    because the report and the epoch positions must count format rejects first: positions are
    contiguous over the samples kept, so every rank gets its fair share and none waits on a hole.
    """
    import ray

    ray.data.DataContext.get_current().execution_options.preserve_order = True
    selected, counts = select_sources(recipe, specs, seed, strict, max_chars)
    if not selected:
        raise ValueError(f"recipe {format_recipe(recipe)} selects no records")
    rows = [{"source": r["source"], "id": r["id"], "messages": r["messages"]} for r in selected]
    tokenized = (
        ray.data.from_items(rows, override_num_blocks=num_blocks or default_blocks(len(rows)))
        .map_batches(_tokenize, batch_format="numpy", zero_copy_batch=False,
                     fn_kwargs={"tokenizer_name": tokenizer_name, "max_len": max_len,
                                "overlong": overlong})
        .materialize()
    )
    outcome = tokenized.select_columns(["source", "id", "n_tokens", "truncated",
                                        "reject_reason"]).to_pandas()
    report = _report(recipe, counts, outcome, seed=seed, epochs=epochs, max_len=max_len,
                     overlong=overlong, tokenizer_name=tokenizer_name)
    if report.rows_per_epoch == 0:
        raise ValueError(f"every selected sample was rejected at tokenization:\n{report.format()}")
    kept = outcome[outcome["reject_reason"] == ""]
    return order_epochs(tokenized, list(zip(kept["source"], kept["id"])), seed, epochs), report


def order_epochs(tokenized, pairs: list[tuple[str, str]], seed: int, epochs: int):
    """Every epoch's rows in sha256(seed, epoch, source, id) order, as one dataset.

    A sort with exact, known boundaries: the driver ranks the (source, id) keys, each block is
    split by position // chunk_rows (Ray tasks), each chunk merged and sorted. Ray Data's own
    `sort` samples its boundaries and cost ~7 s fixed on 2 cores even for 1000 rows.
    """
    import ray

    block_refs = tokenized.to_arrow_refs()
    n_chunks = default_blocks(len(pairs))
    chunk_rows = -(-len(pairs) // n_chunks)
    split = ray.remote(_split_block).options(num_returns=n_chunks)
    merge = ray.remote(_merge_chunk)
    chunk_refs = []
    for epoch in range(epochs):
        keys = ray.put(np.array(sorted(order_key(seed, epoch, s, i) for s, i in pairs),
                                dtype="S32"))
        parts = [split.remote(ref, epoch, seed, keys, chunk_rows, n_chunks) for ref in block_refs]
        parts = [p if n_chunks > 1 else [p] for p in parts]
        chunk_refs += [merge.remote(*[p[c] for p in parts]) for c in range(n_chunks)]
    return ray.data.from_arrow_refs(chunk_refs)


def _split_block(table, epoch: int, seed: int, sorted_keys: np.ndarray, chunk_rows: int,
                 n_chunks: int):
    """The kept rows of one tokenized block, with epoch/position, cut into position chunks."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = table.filter(pc.equal(table["reject_reason"], ""))
    keys = np.array([order_key(seed, epoch, s, i) for s, i in
                     zip(table["source"].to_pylist(), table["id"].to_pylist())], dtype="S32")
    position = np.searchsorted(sorted_keys, keys).astype(np.int64)
    table = table.append_column("epoch", pa.array(np.full(len(keys), epoch, dtype=np.int64)))
    table = table.append_column("position", pa.array(position)).select(ROW_COLUMNS)
    chunk = position // chunk_rows
    parts = [table.filter(pa.array(chunk == c)) for c in range(n_chunks)]
    return parts if n_chunks > 1 else parts[0]


def _merge_chunk(*parts):
    import pyarrow as pa

    return pa.concat_tables(parts).sort_by("position")


def default_blocks(n_rows: int) -> int:
    """About 1000 rows a block, at most 64: a few-row block costs a task each (from_items' own
    default gives about one block per row here)."""
    return max(1, min(64, n_rows // 1000))


# ---- worker side ------------------------------------------------------------------------------

def data_config():
    """The DataConfig a trainer passes: every worker sees the whole dataset, in order."""
    from ray.data import ExecutionOptions
    from ray.train import DataConfig

    return DataConfig(datasets_to_split=[], execution_options=ExecutionOptions(preserve_order=True))


def iter_worker_rows(dataset_or_shard, rank: int, world_size: int,
                     start_after: tuple[int, int] | None = None,
                     batch_size: int = 256) -> Iterator[dict]:
    """This worker's rows (position % world_size == rank) in (epoch, position) order; a resumed
    worker passes the (epoch, position) of its last consumed row as `start_after`."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    for batch in dataset_or_shard.iter_batches(batch_size=batch_size, batch_format="numpy"):
        epochs, positions = batch["epoch"], batch["position"]
        for j in range(len(positions)):
            epoch, position = int(epochs[j]), int(positions[j])
            if position % world_size != rank:
                continue
            if start_after is not None and (epoch, position) <= tuple(start_after):
                continue
            yield {"epoch": epoch, "position": position, "source": str(batch["source"][j]),
                   "id": str(batch["id"][j]), "n_tokens": int(batch["n_tokens"][j]),
                   # copies: Arrow hands out read-only views, which torch warns about
                   "input_ids": np.array(batch["input_ids"][j]),
                   "labels": np.array(batch["labels"][j])}


def iter_micro_batches(rows: Iterable[dict], micro_batch: int,
                       collate: Callable[[list[dict]], object]) -> Iterator[object]:
    """Consecutive groups of `micro_batch` rows, collated; the last group may be shorter."""
    if micro_batch < 1:
        raise ValueError(f"micro_batch must be >= 1, got {micro_batch}")
    group: list[dict] = []
    for row in rows:
        group.append(row)
        if len(group) == micro_batch:
            yield collate(group)
            group = []
    if group:
        yield collate(group)


def report_json(report: DataReport) -> str:
    return json.dumps(report.to_dict(), indent=1, default=str)
