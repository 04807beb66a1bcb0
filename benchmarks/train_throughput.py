"""Real (non-pad) tokens/s of this project's train step beside `transformers.Trainer`, on the same
model, samples, order and batch size, in one process, for padded and for packed micro-batches.

The samples mix short math/code and longer chat in the paper's proportions (110k : 20k : 86k):
`--data corpora` tokenizes the built-in synthetic corpora, `--data paper-lengths` draws token
lengths like GSM8K-RFT / Code Alpaca / ShareGPT (chat ~ lognormal, median ~700, up to max_len).
    python -m benchmarks.train_throughput --model tiny_llama --steps 12 --batch 8
"""

from __future__ import annotations

import argparse
import math
import random
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
    from trainers.data.corpora import builtin_specs, write_builtin_corpora
    from trainers.data.formatting import tokenize_conversation
    from trainers.data.sources import read_records

    counts = mix_counts(n)
    directory = tempfile.mkdtemp(prefix="bench-corpora-")
    write_builtin_corpora(directory, {**counts, "math_test": 10}, seed=seed)
    specs = builtin_specs(directory)
    samples = []
    for name, count in counts.items():
        for record in read_records(specs[name])[:count]:
            row = tokenize_conversation(record["messages"], tokenizer, max_len)
            samples.append({"input_ids": row["input_ids"], "labels": row["labels"]})
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


def rate(samples, batch, step_ends: list[float], warmup: int) -> float:
    """Real tokens/s over the steps after `warmup` (step_ends[i] is when step i finished)."""
    tokens = sum(batch_tokens(samples, batch, i) for i in range(warmup + 1, len(step_ends)))
    return tokens / (step_ends[-1] - step_ends[warmup])


def run_loop(model_name, samples, batch, steps, warmup, packing, precision, pad_id) -> dict:
    from trainers.backends import TorchBackend
    from trainers.loop import StepPlan, collate_micro_batches, train_step
    from trainers.model import build_model
    from trainers.settings import TrainSettings

    settings = TrainSettings(global_batch=batch, micro_batch=batch, packing=packing)
    plan = StepPlan.create(settings, len(samples), 1)
    backend = TorchBackend(build_model(model_name, seed=0), settings, total_steps=steps,
                           device="cuda" if torch.cuda.is_available() else "cpu",
                           precision=precision)
    ends, pad = [], []
    for step in range(steps):
        rows = samples[step * batch:(step + 1) * batch]
        stats = train_step(backend, collate_micro_batches(rows, plan, pad_id, packing))
        pad.append(1 - stats.real_tokens / stats.padded_tokens)
        ends.append(time.perf_counter())
    return {"tokens_per_s": rate(samples, batch, ends, warmup), "padding": sum(pad) / len(pad),
            "loss": stats.loss}


def run_trainer(model_name, samples, batch, steps, warmup, packing, precision, tokenizer) -> dict:
    from torch.utils.data import SequentialSampler
    from transformers import (
        DataCollatorForSeq2Seq,
        DataCollatorWithFlattening,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from trainers.model import build_model

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
    args = parser.parse_args(argv)

    from trainers.model import load_tokenizer

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
    results = {}
    for packing in (False, True):
        results[packing] = (run_trainer(*common, packing, args.precision, tokenizer),
                            run_loop(*common, packing, args.precision, tokenizer.pad_token_id))
    base = results[False][0]["tokens_per_s"]
    print(f"\n{'batches':8} {'Trainer tok/s':>14} {'loop tok/s':>11} {'loop/Trainer':>13} "
          f"{'loop/Trainer padded':>20} {'loop pad frac':>14}")
    for packing, (hf, ours) in results.items():
        print(f"{'packed' if packing else 'padded':8} {hf['tokens_per_s']:14.1f} "
              f"{ours['tokens_per_s']:11.1f} {ours['tokens_per_s'] / hf['tokens_per_s']:13.2f} "
              f"{ours['tokens_per_s'] / base:20.2f} {ours['padding']:14.2f}")
    print("\nfinal-step loss (loop) / mean loss (Trainer): "
          + ", ".join(f"{'packed' if p else 'padded'} {o['loss']:.3f} / {h['loss']:.3f}"
                      for p, (h, o) in results.items()))


if __name__ == "__main__":
    main()
