"""Real (non-pad) tokens/s of this project's train step beside `transformers.Trainer`, on the same
model, samples, order and batch size, in one process, for padded and for packed micro-batches.

The samples mix short math/code and longer chat in the paper's proportions (110k : 20k : 86k):
`--data corpora` tokenizes the built-in synthetic corpora, `--data paper-lengths` draws token
lengths like GSM8K-RFT / Code Alpaca / ShareGPT (chat ~ lognormal, median ~700, up to max_len).
Each of the four runs is repeated `--repeats` times, interleaved so drift hits all alike; the
tables show medians. The breakdown splits "loop packed / Trainer padded" into exact factors:
padding removed (positions the Trainer computes per real token), the loop's per-position speed
on the same padded batches (it skips the vocabulary projection where no label follows), and
packed against padded per position in the loop (the block-diagonal attention path).
    python -m benchmarks.train_throughput --model tiny_llama --data paper-lengths --repeats 3
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time

import torch

MIX = {"math": 110_142, "code": 20_022, "general": 86_060}  # the paper's training set sizes


def mix_counts(n: int) -> dict[str, int]:
    total = sum(MIX.values())
    counts = {k: math.floor(n * v / total) for k, v in MIX.items()}
    counts["math"] += n - sum(counts.values())
    return counts


def corpora_samples(n: int, max_len: int, tokenizer, seed: int) -> list[dict]:
    from trainers.data.corpora import folder_specs, write_builtin_corpora
    from trainers.data.formatting import FormatError, tokenize_conversation
    from trainers.data.records import Rejects
    from trainers.data.sources import read_records

    counts, rejects = mix_counts(n), Rejects()
    directory = tempfile.mkdtemp(prefix="bench-corpora-")
    write_builtin_corpora(directory, {**counts, "math_test": 10}, seed=seed)
    specs = folder_specs(directory)
    samples = []
    for name, count in counts.items():
        for record in read_records(specs[name])[:count]:
            try:
                row = tokenize_conversation(record["messages"], tokenizer, max_len)
            except FormatError as err:  # e.g. no reply within a small --max-len: counted
                rejects.add(err.reason, f"{name}#{record['id']}")
                continue
            samples.append({"input_ids": row["input_ids"], "labels": row["labels"]})
    if rejects.total:
        print(f"left out {rejects.total} of {sum(counts.values())} samples: "
              f"{rejects.report('')}")
    random.Random(seed).shuffle(samples)
    return samples


def paper_length_samples(n: int, max_len: int, vocab: int, seed: int) -> list[dict]:
    """Random tokens with the lengths and prompt/answer split of the paper's sources."""
    r = random.Random(seed)
    draw = {"math": lambda: r.gauss(230, 60), "code": lambda: r.gauss(170, 70),
            "general": lambda: r.lognormvariate(math.log(700), 0.8)}
    prompt_share = {"math": 0.35, "code": 0.45, "general": 0.3}
    samples = []
    for name, count in mix_counts(n).items():
        for _ in range(count):
            length = int(min(max_len, max(32, draw[name]())))
            ids = [r.randrange(5, vocab) for _ in range(length)]
            cut = int(length * prompt_share[name])
            samples.append({"input_ids": ids, "labels": [-100] * cut + ids[cut:]})
    r.shuffle(samples)
    return samples


def batch_tokens(samples: list[dict], batch: int, step: int) -> int:
    return sum(len(s["input_ids"]) for s in samples[step * batch:(step + 1) * batch])


def padded_positions(samples: list[dict], batch: int, step: int) -> int:
    """Positions a batch padded to its longest row computes (real tokens and pad)."""
    rows = samples[step * batch:(step + 1) * batch]
    return len(rows) * max(len(s["input_ids"]) for s in rows)


def padding_gain(samples: list[dict], batch: int, steps: int, warmup: int) -> float:
    """Padded positions per real token over the timed steps: the most packing can gain alone."""
    timed = range(warmup + 1, steps)
    return (sum(padded_positions(samples, batch, i) for i in timed)
            / sum(batch_tokens(samples, batch, i) for i in timed))


def rate(samples, batch, step_ends: list[float], warmup: int) -> float:
    """Real tokens/s over the steps after `warmup` (step_ends[i] is when step i finished)."""
    tokens = sum(batch_tokens(samples, batch, i) for i in range(warmup + 1, len(step_ends)))
    return tokens / (step_ends[-1] - step_ends[warmup])


def run_loop(model_name, samples, batch, steps, warmup, packing, precision, pad_id) -> dict:
    from core.model import build_model
    from core.settings import TrainSettings
    from trainers.backends import TorchBackend
    from trainers.loop import StepSchedule, collate_micro_batches, train_step

    settings = TrainSettings(global_batch=batch, micro_batch=batch, packing=packing)
    plan = StepSchedule.create(settings, len(samples), 1)
    backend = TorchBackend(build_model(model_name, seed=0), settings, total_steps=steps,
                           device="cuda" if torch.cuda.is_available() else "cpu",
                           precision=precision)
    ends = []
    for step in range(steps):
        rows = samples[step * batch:(step + 1) * batch]
        stats = train_step(backend, collate_micro_batches(rows, plan, pad_id, packing))
        ends.append(time.perf_counter())
    return {"tokens_per_s": rate(samples, batch, ends, warmup), "loss": stats.loss}


def run_trainer(model_name, samples, batch, steps, warmup, packing, precision, tokenizer) -> dict:
    from torch.utils.data import SequentialSampler
    from transformers import (
        DataCollatorForSeq2Seq,
        DataCollatorWithFlattening,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from core.model import build_model

    class InOrder(Trainer):  # same sample order as the loop, so the same batches
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    class StepClock(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())

    model = build_model(model_name, seed=0)
    model.config.use_cache = False  # else packed rows attend across samples (trainers/data/collate.py)
    collator = (DataCollatorWithFlattening(return_position_ids=True) if packing
                else DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100))
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="bench-trainer-"), per_device_train_batch_size=batch,
        max_steps=steps, learning_rate=2e-5, warmup_steps=0.03, lr_scheduler_type="cosine",
        weight_decay=0.0, max_grad_norm=1.0, logging_steps=10**6, save_strategy="no",
        report_to=[], use_cpu=not torch.cuda.is_available(), bf16=precision == "bf16",
        dataloader_num_workers=0, remove_unused_columns=False, disable_tqdm=True, seed=0)
    clock = StepClock()
    trainer = InOrder(model=model, args=args, train_dataset=samples, data_collator=collator,
                      callbacks=[clock])
    out = trainer.train()
    return {"tokens_per_s": rate(samples, batch, clock.ends, warmup), "loss": out.training_loss}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny_llama")
    parser.add_argument("--data", choices=("corpora", "paper-lengths"), default="corpora")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the timing")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=2048)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each; medians shown")
    args = parser.parse_args(argv)

    from core.model import load_tokenizer

    tokenizer = load_tokenizer(args.model)
    n = args.steps * args.batch
    samples = (corpora_samples(n, args.max_len, tokenizer, args.seed) if args.data == "corpora"
               else paper_length_samples(n, args.max_len, len(tokenizer), args.seed))
    lengths = sorted(len(s["input_ids"]) for s in samples)
    print(f"model={args.model} data={args.data} samples={n} batch={args.batch} "
          f"steps={args.steps} (first {args.warmup} untimed) precision={args.precision} "
          f"threads={torch.get_num_threads()}")
    print(f"sample tokens: median {lengths[n // 2]}, mean {sum(lengths) / n:.0f}, "
          f"max {lengths[-1]}")
    common = (args.model, samples, args.batch, args.steps, args.warmup)
    runs = {(packing, who): [] for packing in (False, True) for who in ("Trainer", "loop")}
    for repeat in range(args.repeats):
        for packing in (False, True):
            runs[packing, "Trainer"].append(
                run_trainer(*common, packing, args.precision, tokenizer))
            runs[packing, "loop"].append(
                run_loop(*common, packing, args.precision, tokenizer.pad_token_id))
        print(f"repeat {repeat + 1}/{args.repeats}: " + ", ".join(
            f"{who} {'packed' if p else 'padded'} {r[-1]['tokens_per_s']:.0f}"
            for (p, who), r in runs.items()) + " tok/s", flush=True)
    print_tables(runs, padding_gain(samples, args.batch, args.steps, args.warmup))


def median_rate(results: list[dict]) -> float:
    return statistics.median(r["tokens_per_s"] for r in results)


def print_tables(runs: dict, gain: float) -> None:
    n = len(runs[False, "Trainer"])
    med = {key: median_rate(results) for key, results in runs.items()}
    base = med[False, "Trainer"]
    print(f"\nmedians of {n} repeats (range in brackets), real tokens/s")
    print(f"{'batches':8} {'Trainer tok/s':>22} {'loop tok/s':>22} {'loop/Trainer':>13} "
          f"{'loop/Trainer padded':>20}")
    for packing in (False, True):
        cells = []
        for who in ("Trainer", "loop"):
            rates = [r["tokens_per_s"] for r in runs[packing, who]]
            cells.append(f"{med[packing, who]:.0f} [{min(rates):.0f}-{max(rates):.0f}]")
        print(f"{'packed' if packing else 'padded':8} {cells[0]:>22} {cells[1]:>22} "
              f"{med[packing, 'loop'] / med[packing, 'Trainer']:13.2f} "
              f"{med[packing, 'loop'] / base:20.2f}")
    # Per-position speeds: the padded runs compute `gain` positions per real token.
    loop_vs_trainer = med[False, "loop"] / base
    packed_vs_padded = med[True, "loop"] / (med[False, "loop"] * gain)
    print(f"\nloop packed / Trainer padded = {med[True, 'loop'] / base:.2f} = "
          f"padding removed {gain:.2f} x loop per-position speed on padded batches "
          f"{loop_vs_trainer:.2f} x packed vs padded per position in the loop "
          f"{packed_vs_padded:.2f}")
    print("final-step loss (loop) / mean loss (Trainer): " + ", ".join(
        f"{'packed' if p else 'padded'} {runs[p, 'loop'][-1]['loss']:.3f} / "
        f"{runs[p, 'Trainer'][-1]['loss']:.3f}" for p in (False, True)))


if __name__ == "__main__":
    main()
