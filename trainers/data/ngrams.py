"""N-gram overlap between training records and test items: the engine of decontamination.

Text is normalised as lm-eval's janitor and open-instruct's decontamination do: lowercased,
punctuation (and `_`) deleted, split on whitespace. An n-gram is N consecutive words inside one
turn or one field of a test item. `TestIndex` holds only hashes of the test items' n-grams, so
`scan` can stream any number of records past it. Test items come in as plain data: trainers/
never imports evals/; `python -m sweep.decontaminate` loads them and runs this.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_N = 13  # lm-eval's and open-instruct's default
MAX_EXAMPLES = 3  # per test set and source
_PUNCT = re.compile(r"[^\w\s]|_")


def words(text: str) -> list[str]:
    """'Def has_close(x): ...' -> ['def', 'hasclosex']: lowercase, punctuation deleted."""
    return _PUNCT.sub("", text.lower()).split()


def ngrams(text: str, n: int) -> Iterable[str]:
    ws = words(text)
    return (" ".join(ws[i:i + n]) for i in range(len(ws) - n + 1))


@dataclass(frozen=True)
class TestItem:
    test: str  # the eval's name: gsm8k, humaneval, mtbench
    id: str  # the eval's own item id (gsm8k/12, HumanEval/3, mtbench/81)
    texts: tuple[str, ...]  # its fields (question, answer; prompt, solution; turns)


@dataclass
class TestIndex:
    """Hashed n-grams of test items -> the items holding them. Python's str hash is salted per
    process, which is fine for an index built and used in one process; never store it."""

    n: int = DEFAULT_N
    grams: dict[int, tuple[int, ...]] = field(default_factory=dict)
    items: list[tuple[str, str]] = field(default_factory=list)  # (test, item id)
    stats: dict[str, Counter] = field(default_factory=dict)  # test -> items, short, ngrams

    def add(self, item: TestItem) -> None:
        number = len(self.items)
        self.items.append((item.test, item.id))
        counts = self.stats.setdefault(item.test, Counter(items=0, short=0, ngrams=0))
        counts["items"] += 1
        found = 0
        for text in item.texts:
            for gram in ngrams(text, self.n):
                key = hash(gram)
                held = self.grams.get(key, ())
                if number not in held:
                    self.grams[key] = held + (number,)
                    found += 1
        counts["ngrams"] += found
        counts["short"] += found == 0  # fewer than n words in every field: cannot be matched

    def hits(self, record: dict) -> dict[str, dict]:
        """test -> {"item", "ngram", "ngrams"}: the first matching n-gram of each test set in
        the record's turns (all roles) and how many of the record's n-grams hit that test."""
        found: dict[str, dict] = {}
        for message in record["messages"]:
            for gram in ngrams(message["content"], self.n):
                numbers = self.grams.get(hash(gram))
                if numbers is None:
                    continue
                for test in {self.items[k][0] for k in numbers}:
                    hit = found.get(test)
                    if hit is None:
                        item = next(self.items[k][1] for k in numbers if self.items[k][0] == test)
                        found[test] = {"item": item, "ngram": gram, "ngrams": 1}
                    else:
                        hit["ngrams"] += 1
        return found


def build_index(items: Iterable[TestItem], n: int = DEFAULT_N) -> TestIndex:
    if n < 1:
        raise ValueError(f"n-gram length must be at least 1, not {n}")
    index = TestIndex(n)
    for item in items:
        index.add(item)
    return index


@dataclass
class Overlap:
    """One source against the index: samples read, samples with any hit, per test set."""

    read: int = 0
    overlapping: int = 0
    by_test: Counter = field(default_factory=Counter)
    examples: list[dict] = field(default_factory=list)

    def to_dict(self, tests: Iterable[str]) -> dict:
        return {"read": self.read, "overlapping": self.overlapping,
                "by_test": {t: self.by_test[t] for t in tests}, "examples": self.examples}


def scan(records: Iterable[dict], index: TestIndex, max_examples: int = MAX_EXAMPLES) -> Overlap:
    """Stream `records` past `index`, holding only counts and a few examples."""
    out = Overlap()
    for record in records:
        out.read += 1
        found = index.hits(record)
        out.overlapping += bool(found)
        for test, hit in sorted(found.items()):
            out.by_test[test] += 1
            if out.by_test[test] <= max_examples:
                out.examples.append({"sample": record["id"], "test": test, **hit})
    return out
