"""The data command: what a recipe reads, keeps, rejects and selects, its tokens and padding.

    python -m trainers.data --recipe "math=1/256,code=1/256,general=1/256"
    python -m trainers.data --recipe "gsm8k=1/256" --source gsm8k=../shared/data/gsm8k/train.jsonl
Without --source a recipe's names come from the built-in SYNTHETIC corpora (written once into
the cache, as a sweep writes them into its storage). --strict stops at the first bad record (file:line: reason); --json prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import ray

from core.model import load_tokenizer
from core.settings import DEFAULT_TEMPLATE, TEMPLATES
from trainers.data.builtin_sources import cached_builtin_specs
from trainers.data.collate import (
    collate_packed,
    collate_padded,
    iter_micro_batches,
    iter_worker_rows,
)
from trainers.data.pipeline import build_stage_dataset
from trainers.data.recipe import parse_recipe
from trainers.data.records import RecordError
from trainers.data.source_spec import FORMATS, SourceSpec, make_spec, parse_named


def resolve_specs(recipe, sources: dict[str, str], formats: dict[str, str],
                  corpora_dir: Path | None = None) -> dict[str, SourceSpec]:
    """--source/--format for the names given; the built-in corpora for the other recipe names."""
    bad = {n: f for n, f in formats.items() if f not in FORMATS and f != "auto"}
    if bad:
        raise SystemExit(f"unknown --format {bad}; choose from {FORMATS}")
    specs = {n: make_spec(n, loc, formats.get(n, "auto")) for n, loc in sources.items()}
    missing = [name for name, _ in recipe if name not in specs]
    if missing:
        builtin = cached_builtin_specs(corpora_dir)
        unknown = [name for name in missing if name not in builtin]
        if unknown:
            raise SystemExit(f"recipe names {unknown}: give --source NAME=PATH_OR_HF_ID, or use "
                             f"a built-in name {sorted(builtin)}")
        specs.update({name: builtin[name] for name in missing})
    return specs


def padding_summary(dataset, micro_batch: int, pad_id: int) -> dict:
    """Pad share of padded micro-batches (pad to the longest row) against packed ones, epoch 0."""

    rows = [r for r in iter_worker_rows(dataset, 0, 1) if r["epoch"] == 0]
    padded_cells = real = packed_cells = batches = 0
    for batch in iter_micro_batches(rows, micro_batch, lambda g: collate_padded(g, pad_id)):
        padded_cells += batch["attention_mask"].numel()
        real += int(batch["attention_mask"].sum())
        batches += 1
    for batch in iter_micro_batches(rows, micro_batch, collate_packed):
        packed_cells += batch["input_ids"].numel()
    return {"micro_batch": micro_batch, "batches": batches, "tokens": real,
            "padded_cells": padded_cells, "packed_cells": packed_cells,
            "padding_fraction_padded": round(1 - real / padded_cells, 4) if padded_cells else 0.0,
            "padding_fraction_packed": round(1 - real / packed_cells, 4) if packed_cells else 0.0}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m trainers.data", description=__doc__.split("\n")[0])
    p.add_argument("--recipe", required=True, help='e.g. "math=1/256,code=#300"')
    p.add_argument("--source", action="append", default=[], type=parse_named,
                   help="NAME=PATH_OR_URI_OR_HF_ID")
    p.add_argument("--format", action="append", default=[], type=parse_named,
                   help=f"NAME=FORMAT, one of {FORMATS}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--strict", action="store_true", help="fail on the first bad record")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--max-len", type=int, default=2048)
    p.add_argument("--overlong", choices=("truncate", "drop"), default="truncate")
    p.add_argument("--max-chars", type=int, default=None, help="reject longer conversations")
    p.add_argument("--tokenizer", default="smollm2_135m")
    p.add_argument("--template", choices=TEMPLATES, default=DEFAULT_TEMPLATE,
                   help="chat template: the paper's vicuna, or the tokenizer's own (model)")
    p.add_argument("--micro-batch", type=int, default=8)
    p.add_argument("--out", type=Path, default=None, help="save data_report.json here")
    p.add_argument("--corpora-dir", type=Path, default=None,
                   help="the folder whose corpora/ holds the built-in corpora (default: the cache)")
    return p.parse_args(argv)


def inspect_recipe(args: argparse.Namespace) -> dict:
    recipe = parse_recipe(args.recipe)
    specs = resolve_specs(recipe, dict(args.source), dict(args.format),
                          args.corpora_dir)
    if not ray.is_initialized():
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(include_dashboard=False, log_to_driver=False,
                 _temp_dir=tempfile.mkdtemp(prefix="ray-data-"))
    ray.data.DataContext.get_current().enable_progress_bars = False
    dataset, report = build_stage_dataset(
        recipe, specs, args.tokenizer, seed=args.seed, epochs=args.epochs, max_len=args.max_len,
        overlong=args.overlong, strict=args.strict, max_chars=args.max_chars,
        template=args.template)
    pad_id = load_tokenizer(args.tokenizer).pad_token_id
    padding = padding_summary(dataset, args.micro_batch, 0 if pad_id is None else pad_id)
    result = {"report": report.to_dict(), "padding": padding}
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "data_report.json").write_text(json.dumps(result, indent=1) + "\n")
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(report.format())
        print(f"padding (micro-batch {padding['micro_batch']}, epoch 0): padded "
              f"{padding['padding_fraction_padded']:.1%} of {padding['padded_cells']} cells, "
              f"packed {padding['padding_fraction_packed']:.1%} of {padding['packed_cells']}")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        inspect_recipe(args)
    except RecordError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
