"""Tokens/s of batched greedy generation beside batch-1 generation of the same prompts, same run.

Both runs decode the same prompts with the same settings, so their replies (and so the useful
tokens counted) match; the ratio of the two rates is the figure to read.
    python benchmarks/generation.py [--model smollm2_135m] [--batch-size 16] [--dtype bf16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

QUESTIONS = [
    "What is 17 times 23? Explain each step.",
    "Write a Python function that reverses a string.",
    "Name three rivers in Europe and one fact about each.",
    "Why is the sky blue?",
    "Give me a short recipe for pancakes.",
    "A train travels 60 km in 45 minutes. What is its speed in km/h?",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "What is the difference between a list and a tuple in Python?",
    "Write a haiku about autumn.",
    "How many legs do three spiders and two ants have in total?",
    "Explain what a hash table is to a beginner.",
    "Translate 'good morning, how are you?' into French.",
    "What causes the seasons on Earth?",
    "List four prime numbers greater than 50.",
    "Write a SQL query that counts rows in a table named users.",
    "Tom has 5 apples, eats 2 and buys 7 more. How many does he have?",
]


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2_135m")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()

    import torch

    from evals.generation import generate_text, load, stop_strings
    from trainers.data.vicuna import STOP, eos_text_for, generation_prompt

    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    (model, tokenizer), load_s = timed(lambda: load(args.model, dtype=dtype))
    questions = (QUESTIONS * (args.prompts // len(QUESTIONS) + 1))[:args.prompts]
    prompts = [generation_prompt([{"role": "user", "content": q}], eos_text_for(tokenizer))
               for q in questions]
    stop = stop_strings(tokenizer, STOP)

    def run(batch_size):
        return generate_text(model, tokenizer, prompts, max_new_tokens=args.max_new_tokens,
                             stop=stop, batch_size=batch_size)

    run(args.batch_size)  # warm-up: first calls pay for lazy initialisation
    batched, batched_s = timed(lambda: run(args.batch_size))
    single, single_s = timed(lambda: run(1))
    tokens = sum(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in single)
    same = sum(a == b for a, b in zip(batched, single))
    print(f"model {args.model} ({args.dtype}, loaded in {load_s:.1f}s), "
          f"{torch.get_num_threads()} torch threads, {len(prompts)} prompts, "
          f"max_new_tokens {args.max_new_tokens}, {tokens} tokens generated")
    print(f"batch 1:  {single_s:7.1f}s  {tokens / single_s:7.1f} tokens/s")
    print(f"batch {args.batch_size:<2}: {batched_s:7.1f}s  {tokens / batched_s:7.1f} tokens/s")
    print(f"speed-up: {single_s / batched_s:.2f}x; identical replies: {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
