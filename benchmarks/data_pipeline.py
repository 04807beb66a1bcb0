"""Samples/s from corpus files to tokenized batches: our Ray Data pipeline beside HF `datasets`
doing the same work (read, validate, select, mix, order, tokenize with the same function) in the
same run, on the built-in synthetic corpora scaled to --records (default 200k). Run:
    python benchmarks/data_pipeline.py --records 20000 --cpus 2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainers.data.corpora import DEFAULT_SIZES, folder_specs, write_builtin_corpora
from trainers.data.recipe import make_recipe

SOURCES = ("math", "code", "general")


def scaled_sizes(records: int) -> dict[str, int]:
    """The default mix (math 2 : code 1 : general 1) scaled to `records` in all."""
    total = sum(DEFAULT_SIZES[s] for s in SOURCES)
    sizes = {s: records * DEFAULT_SIZES[s] // total for s in SOURCES}
    return {**sizes, "math_test": 10}


def run_ours(recipe, specs, tokenizer: str, max_len: int, batch_size: int) -> tuple[int, float]:
    from trainers.data.pipeline import build_stage_dataset

    start = time.perf_counter()
    dataset, report = build_stage_dataset(recipe, specs, tokenizer, seed=0, epochs=1,
                                          max_len=max_len)
    rows = 0
    for batch in dataset.iter_batches(batch_size=batch_size, batch_format="numpy"):
        rows += len(batch["n_tokens"])
    assert rows == report.rows_per_epoch
    return rows, time.perf_counter() - start


def _hf_normalize(fmt: str):
    """HF-side normalization into messages with the same readers' converters."""
    from trainers.data.records import check_messages, content_id
    from trainers.data.rows import BadRow
    from trainers.data.sources import CONVERTERS

    def convert(row):
        try:
            messages = CONVERTERS[fmt](row)
            messages = messages[1:] if messages and messages[0]["role"] == "assistant" else messages
            reason = check_messages(messages)
        except BadRow as bad:
            messages, reason = [], str(bad)
        own = row.get("id")
        return {"messages": messages, "ok": reason is None,
                "rid": str(own) if own else (content_id(messages) if messages else "")}
    return convert


def run_hf(recipe, specs, tokenizer_name: str, max_len: int, batch_size: int, cpus: int):
    import datasets

    from core.model import load_tokenizer
    from trainers.data.formatting import FormatError, tokenize_conversation
    from trainers.data.selection import count_for, order_key, selection_key

    datasets.disable_caching()
    start = time.perf_counter()
    tokenizer = load_tokenizer(tokenizer_name)
    parts = []
    for source, amount in recipe:
        spec = specs[source]
        ds = datasets.load_dataset("json", data_files=spec.location, split="train")
        ds = ds.map(_hf_normalize(spec.format), remove_columns=ds.column_names, num_proc=None)
        ds = ds.filter(lambda r: r["ok"])
        ds = ds.map(lambda r, s=source: {"key": selection_key(0, s, r["rid"]), "source": s})
        ds = ds.sort("key").select(range(count_for(amount, len(ds))))
        parts.append(ds)
    mixed = datasets.concatenate_datasets(parts)
    mixed = mixed.map(lambda r: {"key": order_key(0, 0, r["source"], r["rid"])}).sort("key")

    def tokenize(batch):
        out = {"input_ids": [], "labels": [], "n_tokens": [], "ok": []}
        for messages in batch["messages"]:
            try:
                row = tokenize_conversation(messages, tokenizer, max_len, "truncate")
            except FormatError:
                row = {"input_ids": [], "labels": []}
            out["input_ids"].append(row["input_ids"])
            out["labels"].append(row["labels"])
            out["n_tokens"].append(len(row["input_ids"]))
            out["ok"].append(bool(row["input_ids"]))
        return out

    mixed = mixed.map(tokenize, batched=True, batch_size=256, num_proc=cpus,
                      remove_columns=["messages", "key"])
    mixed = mixed.filter(lambda r: r["ok"]).with_format("numpy", columns=["input_ids", "labels"])
    rows = 0
    for batch in mixed.iter(batch_size=batch_size):
        rows += len(batch["input_ids"])
    return rows, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--fraction", type=Fraction, default=Fraction(1, 2))
    p.add_argument("--cpus", type=int, default=os.cpu_count())
    p.add_argument("--tokenizer", default="tiny_llama")
    p.add_argument("--max-len", type=int, default=2048)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args(argv)

    import ray

    work = Path(tempfile.mkdtemp(prefix="bench-data-"))
    start = time.perf_counter()
    write_builtin_corpora(work, scaled_sizes(args.records))
    print(f"wrote {args.records} synthetic records in {time.perf_counter() - start:.1f}s")
    specs = folder_specs(work)
    recipe = make_recipe([(s, args.fraction) for s in SOURCES])
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             _temp_dir=str(work / "ray"))
    ray.data.DataContext.get_current().enable_progress_bars = False
    ours_rows, ours_s = run_ours(recipe, specs, args.tokenizer, args.max_len, args.batch_size)
    ray.shutdown()
    hf_rows, hf_s = run_hf(recipe, specs, args.tokenizer, args.max_len, args.batch_size,
                           args.cpus)
    print(f"recipe {args.fraction} of each of {SOURCES}, {args.cpus} CPUs, max_len {args.max_len}")
    print(f"ray data pipeline: {ours_rows} samples in {ours_s:.1f}s = {ours_rows / ours_s:.0f}/s")
    print(f"hf datasets      : {hf_rows} samples in {hf_s:.1f}s = {hf_rows / hf_s:.0f}/s")
    print(f"ratio (ours / hf samples per second): {(ours_rows / ours_s) / (hf_rows / hf_s):.2f}")


if __name__ == "__main__":
    main()
