"""The built-in `code` corpus (version 2): SYNTHETIC Python functions in the Code Alpaca format
that teach what HumanEval measures, function completion from a signature and a docstring.

Most rows ask, in the words a HumanEval prompt is given in, to complete a function whose
signature and docstring (with `>>>` examples) are shown, and answer with the whole function in
one fenced block; the rest are plain Code Alpaca instructions. Every function is ours (no
HumanEval problem or wording: `python -m sweep.decontaminate` finds no 13-gram shared with
HumanEval), and every one is tested when it is written: its docstring examples and more inputs
are run against a reference written apart from it, so a wrong body fails the generator, never a
training run.
    python -c "from trainers.data.code_corpus import generate_code; print(generate_code(2)[0])"
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

COMPLETE = ("Complete the following Python function. Reply with the whole function in one "
            "```python code block.\n\n```python\n{prompt}```")
INSTRUCT = "Write a Python function `{name}{signature}` that {task}."
COMPLETION_SHARE = 0.75  # the rest are instruction-style rows, as Code Alpaca has them


@dataclass(frozen=True)
class Family:
    """A kind of function: its names, signature, what it does (with a constant k drawn per row),
    its body, and a reference written separately that the examples and tests are checked on."""

    names: tuple[str, ...]
    signature: str  # "(numbers: list[int]) -> int"
    task: str  # "returns the sum of the numbers greater than {k}"
    body: str  # indented 4 spaces; may use {k}
    reference: Callable  # (k, *args) -> expected
    inputs: Callable[[random.Random, int], tuple]  # (rng, k) -> the arguments of one call
    k_range: tuple[int, int] = (2, 9)


def _ints(r: random.Random, n: int = 3, lo: int = -5, hi: int = 20) -> list[int]:
    return [r.randint(lo, hi) for _ in range(r.randint(max(1, n - 2), n + 2))]


WORDS = ("river", "stone", "lantern", "maple", "orbit", "quill", "harbor", "pepper", "violet",
         "tundra", "cobalt", "meadow", "ember", "saddle", "glacier", "thimble")


def _sentence(r: random.Random, n: int = 4) -> str:
    return " ".join(r.choice(WORDS) for _ in range(r.randint(2, n)))


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


FAMILIES = (
    Family(("sum_above", "total_over", "add_large"), "(numbers: list[int]) -> int",
           "returns the sum of the numbers strictly greater than {k}",
           "    return sum(x for x in numbers if x > {k})",
           lambda k, xs: sum(x for x in xs if x > k), lambda r, k: (_ints(r),)),
    Family(("scale_each", "times_all", "multiply_items"), "(values: list[int]) -> list[int]",
           "returns a new list with every value multiplied by {k}",
           "    return [x * {k} for x in values]",
           lambda k, xs: [x * k for x in xs], lambda r, k: (_ints(r, 3),)),
    Family(("count_matches", "tally_value", "occurrences"), "(items: list[int]) -> int",
           "counts how many elements of items are equal to {k}",
           "    count = 0\n    for x in items:\n        if x == {k}:\n            count += 1\n"
           "    return count",
           lambda k, xs: xs.count(k), lambda r, k: ([r.choice([k, k, 1, 2, 3]) for _ in range(5)],)),
    Family(("keep_divisible", "multiples_only", "filter_by_factor"),
           "(numbers: list[int]) -> list[int]",
           "keeps, in order, the numbers that are divisible by {k}",
           "    return [x for x in numbers if x % {k} == 0]",
           lambda k, xs: [x for x in xs if x % k == 0], lambda r, k: (_ints(r, 4, 0, 30),)),
    Family(("peak_plus", "largest_shifted"), "(numbers: list[int]) -> int",
           "returns the largest number in a non-empty list plus {k}",
           "    best = numbers[0]\n    for x in numbers[1:]:\n        if x > best:\n"
           "            best = x\n    return best + {k}",
           lambda k, xs: max(xs) + k, lambda r, k: (_ints(r),)),
    Family(("first_unique", "dedupe_head"), "(items: list[int]) -> list[int]",
           "drops repeated values (keeping first occurrences) and returns at most {k} of them",
           "    return list(dict.fromkeys(items))[:{k}]",
           lambda k, xs: list(dict.fromkeys(xs))[:k],
           lambda r, k: ([r.randint(0, 6) for _ in range(6)],)),
    Family(("squares_up_to", "square_total"), "(n: int) -> int",
           "returns 1*1 + 2*2 + ... + n*n, plus {k}",
           "    return sum(i * i for i in range(1, n + 1)) + {k}",
           lambda k, n: sum(i * i for i in range(1, n + 1)) + k, lambda r, k: (r.randint(0, 12),)),
    Family(("shift_and_sort", "raise_descending"), "(numbers: list[int]) -> list[int]",
           "adds {k} to every number and returns them sorted from largest to smallest",
           "    return sorted((x + {k} for x in numbers), reverse=True)",
           lambda k, xs: sorted((x + k for x in xs), reverse=True), lambda r, k: (_ints(r),)),
    Family(("fib_after", "fibonacci_offset"), "(n: int) -> int",
           "returns the Fibonacci number at position n + {k}, counting fib(0) = 0 and fib(1) = 1",
           "    a, b = 0, 1\n    for _ in range(n + {k}):\n        a, b = b, a + b\n    return a",
           lambda k, n: _fib(n + k), lambda r, k: (r.randint(0, 15),)),
    Family(("words_backwards", "flip_word_order"), "(sentence: str) -> str",
           "returns the words of the sentence in reverse order, joined by single spaces",
           "    return \" \".join(reversed(sentence.split()))",
           lambda k, s: " ".join(reversed(s.split())), lambda r, k: (_sentence(r),)),
    Family(("count_long_words", "wordy_count"), "(text: str) -> int",
           "counts the words in text that have more than {k} letters",
           "    return sum(1 for word in text.split() if len(word) > {k})",
           lambda k, s: sum(1 for w in s.split() if len(w) > k), lambda r, k: (_sentence(r, 5),),
           (3, 7)),
    Family(("running_sums", "prefix_totals"), "(numbers: list[int]) -> list[int]",
           "returns the running totals of numbers, each plus {k}",
           "    out = []\n    total = 0\n    for x in numbers:\n        total += x\n"
           "        out.append(total + {k})\n    return out",
           lambda k, xs: [sum(xs[:i + 1]) + k for i in range(len(xs))], lambda r, k: (_ints(r),)),
    Family(("neighbour_gaps", "step_differences"), "(numbers: list[int]) -> list[int]",
           "returns the difference between each number and the one before it, times {k}",
           "    return [(b - a) * {k} for a, b in zip(numbers, numbers[1:])]",
           lambda k, xs: [(b - a) * k for a, b in pairwise(xs)], lambda r, k: (_ints(r),)),
    Family(("digits_total", "sum_of_digits_plus"), "(n: int) -> int",
           "returns the sum of the decimal digits of the non-negative integer n, plus {k}",
           "    return sum(int(d) for d in str(n)) + {k}",
           lambda k, n: sum(int(d) for d in str(n)) + k, lambda r, k: (r.randint(0, 99999),)),
    Family(("split_groups", "batches_of"), "(items: list[int]) -> list[list[int]]",
           "splits items into consecutive groups of {k}",
           "    return [items[i:i + {k}] for i in range(0, len(items), {k})]",
           lambda k, xs: [xs[i:i + k] for i in range(0, len(xs), k)], lambda r, k: (_ints(r, 3),),
           (2, 4)),
    Family(("rotate_by", "turn_left"), "(items: list[int]) -> list[int]",
           "rotates the list left by {k} positions",
           "    if not items:\n        return []\n    shift = {k} % len(items)\n"
           "    return items[shift:] + items[:shift]",
           lambda k, xs: xs[k % len(xs):] + xs[:k % len(xs)] if xs else [],
           lambda r, k: (_ints(r),)),
    Family(("first_seen_twice", "earliest_repeat"), "(items: list[int]) -> int",
           "returns the first value that appears a second time while reading left to right, or "
           "-{k} when no value repeats",
           "    seen = set()\n    for x in items:\n        if x in seen:\n            return x\n"
           "        seen.add(x)\n    return -{k}",
           lambda k, xs: next((x for i, x in enumerate(xs) if x in xs[:i]), -k),
           lambda r, k: ([r.randint(0, 9) for _ in range(r.randint(2, 6))],)),
    Family(("clip_values", "bound_each"), "(numbers: list[int]) -> list[int]",
           "clips every number to the range 0 to {k}",
           "    return [min(max(x, 0), {k}) for x in numbers]",
           lambda k, xs: [min(max(x, 0), k) for x in xs], lambda r, k: (_ints(r, 4, -9, 15),)),
    Family(("count_capitals", "upper_letters"), "(text: str) -> int",
           "counts the upper-case letters in text, plus {k}",
           "    return sum(1 for ch in text if ch.isupper()) + {k}",
           lambda k, s: sum(1 for c in s if c.isupper()) + k,
           lambda r, k: (" ".join(w.capitalize() if r.random() < 0.5 else w
                                  for w in _sentence(r).split()),)),
    Family(("drop_every", "skip_kth"), "(items: list[int]) -> list[int]",
           "removes every {k}-th element and keeps the rest in order",
           "    return [x for i, x in enumerate(items, start=1) if i % {k} != 0]",
           lambda k, xs: [x for i, x in enumerate(xs, 1) if i % k], lambda r, k: (_ints(r, 3),),
           (2, 4)),
    Family(("top_mean", "average_of_best"), "(numbers: list[int]) -> float",
           "returns the mean of the {k} largest numbers",
           "    best = sorted(numbers, reverse=True)[:{k}]\n    return sum(best) / len(best)",
           lambda k, xs: sum(sorted(xs, reverse=True)[:k]) / len(sorted(xs, reverse=True)[:k]),
           lambda r, k: (_ints(r, 3),), (2, 4)),
    Family(("longest_word_len", "widest_word"), "(text: str) -> int",
           "returns the length of the longest word in text, plus {k} (0 plus {k} for no words)",
           "    return max((len(word) for word in text.split()), default=0) + {k}",
           lambda k, s: max((len(w) for w in s.split()), default=0) + k,
           lambda r, k: (_sentence(r, 5),)),
    Family(("even_position_sum", "alternate_total"), "(numbers: list[int]) -> int",
           "returns the sum of the elements at even positions (0, 2, 4, ...) times {k}",
           "    return sum(numbers[::2]) * {k}",
           lambda k, xs: sum(xs[::2]) * k, lambda r, k: (_ints(r),)),
    Family(("join_with_dashes", "dash_words"), "(sentence: str) -> str",
           "replaces each run of spaces in sentence by {k} dashes",
           "    return (\"-\" * {k}).join(sentence.split())",
           lambda k, s: ("-" * k).join(s.split()), lambda r, k: (_sentence(r),), (1, 3)),
)


def _call_text(name: str, args: tuple) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def _example(name: str, args: tuple, value) -> str:
    return f"    >>> {_call_text(name, args)}\n    {value!r}"


def _function(r: random.Random, family: Family) -> tuple[str, str, str, dict]:
    """(prompt, body, task, format values) of one function, its examples run and checked."""
    k = r.randint(*family.k_range)
    values = {"k": k, "k2": 2 * k}
    name = f"{r.choice(family.names)}_{k}"
    body = family.body.format(**values)
    task = family.task.format(**values)
    namespace: dict = {}
    source = f"def {name}{family.signature.split(' ->')[0]}:\n{body}\n"
    exec(source, namespace)  # noqa: S102 (our own template, never a model's code)
    calls = [family.inputs(r, k) for _ in range(6)]
    for args in calls:  # the body against the separately written reference
        got, want = namespace[name](*args), family.reference(k, *args)
        if got != want:
            raise AssertionError(f"code corpus: {name}{args} gave {got!r}, expected {want!r}")
    examples = _example(name, calls[0], namespace[name](*calls[0]))  # one: rows fit 256 tokens
    doc = f"{task[0].upper()}{task[1:]}.\n{examples}"
    prompt = f'def {name}{family.signature}:\n    """{doc}\n    """\n'
    return prompt, body, task, {"name": name}


def code_row(r: random.Random, index: int) -> dict:
    """One Code Alpaca row: a completion (signature and docstring in, whole function out) or an
    instruction (a task in words in, the function out)."""
    family = FAMILIES[r.randrange(len(FAMILIES))]
    prompt, body, task, names = _function(r, family)
    function = f"{prompt}{body}"
    if r.random() < COMPLETION_SHARE:
        return {"id": f"syn-code-{index:06d}", "instruction": COMPLETE.format(prompt=prompt),
                "input": "", "output": f"```python\n{function}\n```"}
    signature = family.signature
    instruction = INSTRUCT.format(name=names["name"], signature=signature, task=task)
    return {"id": f"syn-code-{index:06d}", "instruction": instruction, "input": "",
            "output": f"```python\n{function}\n```"}


def generate_code(n: int, seed: int = 0) -> list[dict]:
    r = random.Random(f"code-v2-{seed}")
    return [code_row(r, i) for i in range(n)]
