"""A stage's training data as a Ray Data dataset: read, validate, select, union, order, tokenize.

Everything that touches a record body runs in Ray Data; the driver holds a few small values per
record (ordinal, line, id, 32-byte selection key, reject reason), never the messages:
  1. layout: one Ray task per source finds its parts (byte or row ranges) and its format;
  2. scan: `map_batches` over the parts parses every row into those keys (trainers/data/scan.py);
  3. select: the driver counts rejects, renames repeated ids and takes each source's exact,
     seeded subset from the keys (the rule of selection.select, same ids);
  4. read + tokenize: `map_batches` over the parts again, keeping the selected rows only;
  5. lay out every epoch in its seeded order, a sort by sha256(seed, epoch, source, id): exact
     on any block layout.
Train workers get the whole dataset and keep rows with `position % world_size == rank`
(`trainers.data.collate.iter_worker_rows`). Try it:
    python -m trainers.data --recipe "math=1/256,code=1/256,general=1/256"
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray
from ray.data import ExecutionOptions
from ray.train import DataConfig

from core.model import load_tokenizer
from core.settings import DEFAULT_TEMPLATE
from trainers.data.builtin_sources import HELD_OUT  # the built-in corpora's test splits
from trainers.data.chat_template import chat_template
from trainers.data.data_report import build_data_report
from trainers.data.formatting import tokenize_batch
from trainers.data.ordering import order_epochs
from trainers.data.recipe import Recipe, format_amount, format_recipe
from trainers.data.records import RecordError, Rejects
from trainers.data.scan import KEY_COLUMNS, layout_source, part_item, read_part, scan_part
from trainers.data.selection import count_for, selection_key
from trainers.data.source_spec import SourceSpec

# ---- driver side: lay out, scan, select from small keys -------------------------------------------

@dataclass(frozen=True)
class Selection:
    """One source's selected rows: ordinals (file order), their final ids (Arrow strings), and
    the source's layout (scan.SourceLayout: its parts, to read them again)."""

    source: str
    ordinals: np.ndarray
    ids: object
    layout: object


def check_recipe(recipe: Recipe, specs: dict[str, SourceSpec]) -> None:
    for source, _ in recipe:
        if source not in specs:
            raise KeyError(f"recipe names source {source!r}; known: {sorted(specs)}")
        if source in HELD_OUT:  # evaluation items: training on them would void every score
            raise ValueError(f"recipe names {source!r}, a held-out test split; never train on it")


def fetch(refs):
    """Every object the driver takes back from Ray goes through here (a test watches it)."""
    return ray.get(refs)


def layout_sources(recipe: Recipe, specs: dict[str, SourceSpec], num_blocks: int | None) -> dict:
    layout = ray.remote(layout_source)
    refs = [layout.remote(specs[source], num_blocks) for source, _ in recipe]
    return dict(zip([source for source, _ in recipe], fetch(refs)))


def scan_sources(layouts: dict, specs: dict[str, SourceSpec], seed: int,
                 max_chars: int | None) -> dict:
    """{source: its rows' keys (scan.KEY_COLUMNS) in file order}, parsed in Ray Data."""


    items = [part_item(p) for layout in layouts.values() for p in layout.parts]
    types = _key_types()
    empty = pa.table({c: pa.array([], type=types[c]) for c in KEY_COLUMNS})
    if not items:
        return {source: empty for source in layouts}
    keys = (ray.data.from_items(items, override_num_blocks=len(items))
            .map_batches(scan_part, batch_size=1, batch_format="pyarrow",
                         fn_kwargs={"specs": _used(specs, layouts), "layouts": layouts, "seed": seed,
                                    "max_chars": max_chars}))
    by_source = {source: [empty] for source in layouts}
    for block in fetch(keys.to_arrow_refs()):
        sources = pc.unique(block["source"]).to_pylist()  # one, unless Ray merged blocks
        for source in sources:
            by_source[source].append(block if len(sources) == 1 else
                                     block.filter(pc.equal(block["source"], source)))
    return {source: _in_file_order(pa.concat_tables(blocks)) for source, blocks in
            by_source.items()}


def _in_file_order(table):
    """The keys by ordinal; parts come back in order, so this seldom copies."""
    ordinals = table["ordinal"].to_numpy()
    return table if np.all(ordinals[1:] > ordinals[:-1]) else table.sort_by("ordinal")


def _key_types():
    return {"source": pa.string(), "ordinal": pa.int64(), "line": pa.int64(), "id": pa.string(),
            "key": pa.binary(), "reason": pa.string(), "repair": pa.string(),
            "excluded": pa.string()}


def _used(specs: dict, layouts: dict) -> dict:
    return {name: specs[name] for name in layouts}


def select_sources(recipe: Recipe, specs: dict[str, SourceSpec], seed: int, strict: bool = False,
                   max_chars: int | None = None,
                   num_blocks: int | None = None) -> tuple[list[Selection], list[dict]]:
    """(each source's Selection, per-source read/kept/rejected/selected counts), the ids exactly
    those of selection.select over sources.read_records, with no record body on the driver."""
    check_recipe(recipe, specs)
    layouts = layout_sources(recipe, specs, num_blocks)
    keys = scan_sources(layouts, specs, seed, max_chars)
    selections, counts = [], []
    for source, amount in recipe:
        selection, count = select_from_keys(keys.pop(source), specs[source], layouts[source],
                                            amount, seed, strict)
        selections.append(selection)
        counts.append({**count, "amount": format_amount(amount)})
    return selections, counts


def select_from_keys(table, spec: SourceSpec, layout, amount, seed: int, strict: bool):
    """read_records' reject counting, id renaming and exclusions (test overlap, tags), then
    selection.select's rule (the first count_for(amount, kept) rows in selection-key order),
    on one source's keys."""
    rejects = Rejects()
    bad = table.filter(pc.not_equal(table["reason"], ""))
    if strict and len(bad):
        raise RecordError(spec.location, bad["line"][0].as_py(), bad["reason"][0].as_py())
    layout.raise_error()
    _count_located(rejects.add, bad, "reason", spec.location)
    _count_located(rejects.repair, table.filter(pc.not_equal(table["repair"], "")), "repair",
                   spec.location)
    good = table.filter(pc.equal(table["reason"], "")) if len(bad) else table
    keys, ids = _fixed_keys(good["key"]), good["id"]
    renamed = _rename_repeats(keys, ids, good["line"], spec, seed, rejects)
    excluded = pc.not_equal(good["excluded"], "").to_numpy(zero_copy_only=False)
    for row in np.flatnonzero(excluded):  # overlapping a test set, or a tag general_nocm drops
        rid = renamed.get(int(row), ids[int(row)].as_py())
        rejects.add(good["excluded"][int(row)].as_py(), f"{spec.location}#{rid}")
    kept_rows = np.flatnonzero(~excluded)
    if renamed and len(np.unique(keys[kept_rows])) != len(kept_rows):
        raise ValueError(f"source {spec.name!r}: record ids are not unique; selection needs them")
    n = count_for(amount, len(kept_rows))
    chosen = np.sort(kept_rows[np.argsort(keys[kept_rows], kind="stable")[:n]])
    chosen_ids = [renamed.get(int(r), rid) for r, rid in zip(chosen, ids.take(chosen).to_pylist())]
    ordinals = good["ordinal"].to_numpy()[chosen]
    count = {"name": spec.name, "location": spec.location, "read": len(table),
             "kept": len(kept_rows), "rejects": rejects.to_dict(), "selected": n}
    return Selection(spec.name, ordinals, _strings(chosen_ids), layout), count


def _count_located(add, rows, column: str, location: str) -> None:
    """add(reason, "file:line") for each row, in file order (the first few are the examples)."""
    for what, line in zip(rows[column].to_pylist(), rows["line"].to_pylist()):
        add(what, f"{location}:{line}")


def _fixed_keys(column) -> np.ndarray:
    """32-byte selection keys as a numpy "S32" array, without a Python object per row."""
    fixed = column.combine_chunks().cast(pa.binary(32))
    if not len(fixed):
        return np.array([], dtype="S32")
    return np.frombuffer(fixed.buffers()[1], dtype="S32", count=len(fixed),
                         offset=fixed.offset * 32).copy()


def _rename_repeats(keys: np.ndarray, ids, lines, spec: SourceSpec, seed: int,
                    rejects: Rejects) -> dict[int, str]:
    """read_records' rule: the k-th repeat of an id (file order) becomes `id#k`, a counted
    repair. Equal ids have equal keys, so only rows whose key repeats are looked at. Updates
    `keys` in place; returns {row: new id}."""
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    repeated = np.flatnonzero(counts[inverse] > 1)
    seen, renamed = Counter(), {}
    for row in repeated.tolist():
        rid = ids[row].as_py()
        seen[rid] += 1
        if seen[rid] > 1:
            rejects.repair("duplicate id renamed id#k", f"{spec.location}:{lines[row].as_py()}")
            renamed[row] = f"{rid}#{seen[rid]}"
            keys[row] = selection_key(seed, spec.name, renamed[row])
    return renamed


def _strings(values: list[str]):
    return pa.array(values, type=pa.string())


# ---- Ray Data side: tokenize, then lay out the epochs ------------------------------------------

@functools.lru_cache(maxsize=4)
def _tokenizer(name: str):
    # One load per Ray worker process: task workers are reused, so this is a per-process cache.
    return load_tokenizer(name)


def tokenize_rows(batch: dict, tokenizer_name: str, max_len: int, overlong: str, template: str):
    """tokenize_batch, returned as an Arrow table with list<int64> token columns: left to Ray,
    a block whose rows happen to be equally long becomes a fixed-shape tensor column, and its
    chunks would no longer concatenate with the variable-shaped ones."""

    out = tokenize_batch(batch, _tokenizer(tokenizer_name), max_len, overlong, template)
    tokens = {k: pa.array(list(out[k]), type=pa.list_(pa.int64())) for k in ("input_ids", "labels")}
    return pa.table({k: tokens.get(k, v) for k, v in out.items()})


def build_stage_dataset(
    recipe: Recipe, specs: dict[str, SourceSpec], tokenizer_name: str, *, seed: int, epochs: int,
    max_len: int = 2048, overlong: str = "truncate", strict: bool = False,
    max_chars: int | None = None, num_blocks: int | None = None,
    template: str = DEFAULT_TEMPLATE,
):
    """(dataset with ROW_COLUMNS, ordered by (epoch, position), DataReport).

    Tokenization runs once per selected record (a streaming `map_batches`) and is materialized,
    because the report and the epoch positions must count format rejects first: positions are
    contiguous over the samples kept, so every rank gets its fair share and none waits on a hole.
    `num_blocks`: parts per source (default: about one per 5000 rows, at most 64); any layout
    gives the same rows. `template`: the chat template's name (trainers/data/chat_template.py);
    "model" is checked against the tokenizer here, so a tokenizer without a chat template
    fails at once with its reason instead of inside every tokenizing task.
    """
    if template != DEFAULT_TEMPLATE:
        chat_template(template, _tokenizer(tokenizer_name))
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    selections, counts = select_sources(recipe, specs, seed, strict, max_chars, num_blocks)
    if not sum(len(s.ordinals) for s in selections):
        raise ValueError(f"recipe {format_recipe(recipe)} selects no records")
    tokenized = (
        read_selected(selections, specs, max_chars)
        .map_batches(tokenize_rows, batch_format="numpy", zero_copy_batch=False,
                     fn_kwargs={"tokenizer_name": tokenizer_name, "max_len": max_len,
                                "overlong": overlong, "template": template})
        .materialize()
    )
    outcome = _outcome(tokenized)
    report = build_data_report(recipe, counts, outcome, seed=seed, epochs=epochs, max_len=max_len,
                     overlong=overlong, tokenizer_name=tokenizer_name)
    if report.rows_per_epoch == 0:
        raise ValueError(f"every selected sample was rejected at tokenization:\n{report.format()}")
    kept = outcome[outcome["reject_reason"] == ""]
    return order_epochs(tokenized, list(zip(kept["source"], kept["id"])), seed, epochs), report


def read_selected(selections: list[Selection], specs: dict[str, SourceSpec],
                  max_chars: int | None):
    """The selected records (source, id, messages) read again from their parts in Ray Data:
    each part task gets only its own selected ordinals and ids."""

    layouts = {selection.source: selection.layout for selection in selections}
    items = []
    for selection in selections:
        for part in selection.layout.parts:
            inside = (selection.ordinals >= part.first_ordinal) & \
                (selection.ordinals < part.end_ordinal)
            if inside.any():
                ids = selection.ids.filter(inside).to_pylist()
                items.append(part_item(part, ordinals=selection.ordinals[inside].tobytes(),
                                       ids=json.dumps(ids)))
    return (ray.data.from_items(items, override_num_blocks=len(items))
            .map_batches(read_part, batch_size=1, batch_format="pyarrow",
                         fn_kwargs={"specs": _used(specs, layouts), "layouts": layouts,
                                    "max_chars": max_chars}))


def _outcome(tokenized):
    """Per selected record: source, id, n_tokens, truncated, reject_reason (no tokens)."""
    columns = ["source", "id", "n_tokens", "truncated", "reject_reason"]
    return pa.concat_tables(fetch(tokenized.select_columns(columns).to_arrow_refs())).to_pandas()


def data_config():
    """The DataConfig a trainer passes: every worker sees the whole dataset, in order."""

    return DataConfig(datasets_to_split=[], execution_options=ExecutionOptions(preserve_order=True))


