"""One stage without Ray: the same worker core (`trainers.loop.run_worker`), collate, backends and
checkpoint format as the Ray Train path, in one process or under `torchrun`.

Rows: a recipe over the built-in corpora, selected, ordered and tokenized by the same rules as
the Ray pipeline (selection.select, selection.epoch_order, formatting.tokenize_conversation),
or a JSONL of tokenized rows (`{"input_ids": [...], "labels": [...]}`, one epoch in order).
    python -m trainers.train_stage --recipe math=#64 --model tiny_llama --out /tmp/stage --steps 8
    torchrun --nproc-per-node 2 -m trainers.train_stage --recipe math=#64 --out /tmp/stage
OUT gets the final HF checkpoint with train_state.json and train_summary.json (what a Ray stage's
"final" checkpoint holds), and mid-stage checkpoints under OUT/checkpoints/step_N, resumed from.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
import torch.distributed as dist

from core.model import load_tokenizer
from core.settings import TrainSettings
from trainers.data.builtin_sources import cached_builtin_specs
from trainers.data.formatting import FormatError, tokenize_conversation
from trainers.data.recipe import parse_recipe
from trainers.data.selection import epoch_order, select
from trainers.data.sources import read_records
from trainers.loop import TrainState, WorkerJob, restore_state, run_worker, save_state, summary


def recipe_rows(recipe_text: str, tokenizer_name: str, settings: TrainSettings) -> list[dict]:
    """One epoch's tokenized rows of a recipe over the built-in corpora, in epoch 0's order
    (later epochs are reordered by `epoch_rows`); rows rejected at tokenization are left out."""

    specs = cached_builtin_specs()
    tokenizer = load_tokenizer(tokenizer_name)
    rows = []
    for source, amount in parse_recipe(recipe_text):
        for record in select(read_records(specs[source]), amount, settings.seed, source):
            try:
                row = tokenize_conversation(record["messages"], tokenizer, settings.max_len,
                                            settings.overlong, settings.template)
            except FormatError:
                continue
            rows.append({"source": source, "id": record["id"], "input_ids": row["input_ids"],
                         "labels": row["labels"]})
    if not rows:
        raise ValueError(f"recipe {recipe_text!r} gives no rows")
    return rows


def jsonl_rows(path: str) -> list[dict]:
    rows = []
    for i, line in enumerate(Path(path).read_text().splitlines()):
        if line.strip():
            row = json.loads(line)
            rows.append({"source": row.get("source", "jsonl"), "id": str(row.get("id", i)),
                         "input_ids": row["input_ids"], "labels": row["labels"]})
    return rows


def epoch_rows(rows: list[dict], seed: int, epochs: int, ordered: bool):
    """Every epoch laid out in full: (epoch, position, row), in the pipeline's seeded order per
    epoch (sha256 of seed, epoch, source, id) unless `ordered` (a JSONL's own order)."""
    by_key = {(r["source"], r["id"]): r for r in rows}
    for epoch in range(epochs):
        keys = list(by_key) if ordered else epoch_order(list(by_key), seed, epoch)
        for position, key in enumerate(keys):
            yield {**by_key[key], "epoch": epoch, "position": position}


class LocalIO:
    """The plain launcher's side of `run_worker`: checkpoints in OUT/checkpoints/step_N (the
    same files a Ray checkpoint holds), the final checkpoint in OUT, metrics as JSON lines."""

    def __init__(self, out: Path, rows: list[dict], *, seed: int, epochs: int, ordered: bool,
                 rank: int, world: int, quiet: bool = False):
        self.out, self.rows_all, self.seed, self.epochs = out, rows, seed, epochs
        self.ordered, self.rank, self.world, self.quiet = ordered, rank, world, quiet

    def node(self) -> str:
        return socket.gethostname()

    def restore(self, backend) -> TrainState:
        if (self.out / "train_state.json").exists():
            return restore_state(backend, self.out)
        steps = sorted((self.out / "checkpoints").glob("step_*/train_state.json"))
        return restore_state(backend, steps[-1].parent) if steps else TrainState()

    def rows(self, state: TrainState):
        after = (state.epoch, state.next_position - 1)
        for row in epoch_rows(self.rows_all, self.seed, self.epochs, self.ordered):
            if row["position"] % self.world == self.rank and \
                    (row["epoch"], row["position"]) > after:
                yield row

    def report(self, metrics: dict) -> None:
        if self.rank == 0 and not self.quiet:
            print(json.dumps({k: v for k, v in metrics.items() if k != "mfu" or v}), flush=True)

    def checkpoint(self, backend, state: TrainState, metrics: dict) -> None:
        directory = self.out / "checkpoints" / f"step_{state.step:07d}"
        directory.mkdir(parents=True, exist_ok=True)
        save_state(backend, state, directory, self.rank)
        self.report(metrics)

    @contextlib.contextmanager
    def final_dir(self):
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            yield self.out
        else:  # save_hf is a collective under ZeRO-3: other ranks join and write nothing kept
            with tempfile.TemporaryDirectory(prefix=f"final-r{self.rank}-") as tmp:
                yield tmp

    def final(self, directory: Path, metrics: dict) -> None:
        if self.rank == 0:
            shutil.rmtree(self.out / "checkpoints", ignore_errors=True)

    def finished_again(self, state: TrainState) -> None:
        if self.rank == 0 and not self.quiet:
            print(json.dumps({**summary(state), "final": True}))


def init_distributed(use_gpu: bool) -> tuple[int, int, torch.device]:
    """(rank, world, device): a process group when torchrun set its variables, else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local}") if use_gpu else torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        if use_gpu:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if use_gpu else "gloo")
    return (dist.get_rank(), world, device) if world > 1 else (0, 1, device)


def train_stage(model: str, rows: list[dict], out: str | Path, settings: TrainSettings, *,
                tokenizer: str | None = None, use_gpu: bool = False, ordered: bool = False,
                quiet: bool = False) -> dict:
    """Train one stage on `rows` (one epoch's tokenized rows) into `out`; the run summary."""
    rank, world, device = init_distributed(use_gpu)
    job = WorkerJob(model=model, tokenizer=tokenizer or model, settings=settings,
                    rows_per_epoch=len(rows), use_gpu=use_gpu)
    io = LocalIO(Path(out), rows, seed=settings.seed, epochs=settings.epochs, ordered=ordered,
                 rank=rank, world=world, quiet=quiet)
    return run_worker(job, io, rank=rank, world=world, device=device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--recipe", help='e.g. "math=#64,code=1/256" over the built-in corpora')
    data.add_argument("--jsonl", help="tokenized rows: input_ids, labels (one epoch, in order)")
    parser.add_argument("--model", default="tiny_llama")
    parser.add_argument("--tokenizer", default=None, help="default: the model's")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=0,
                        help="train on the first steps x global_batch rows only (0: all)")
    parser.add_argument("--settings", default="{}",
                        help='TrainSettings fields as JSON, e.g. \'{"lr": 1e-3, "epochs": 1}\'')
    parser.add_argument("--gpu", action="store_true")
    args = parser.parse_args(argv)
    settings = TrainSettings.from_dict({**TrainSettings().to_dict(), **json.loads(args.settings)})
    tokenizer = args.tokenizer or args.model
    rows = (recipe_rows(args.recipe, tokenizer, settings) if args.recipe
            else jsonl_rows(args.jsonl))
    if args.steps:
        rows = rows[:args.steps * settings.global_batch]
        settings = replace(settings, epochs=1)
    result = train_stage(args.model, rows, args.out, settings, tokenizer=tokenizer,
                         use_gpu=args.gpu, ordered=bool(args.jsonl))
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("_curve")}))


if __name__ == "__main__":
    main()
