"""Decontamination inside training: a source whose `decontaminate` names a test-items file leaves
out every sample sharing an n-gram with a test item, counted as `contaminated:<test>` (several
tests joined by "+"), in both readers (sources.iter_records and the Ray Data scan).

The sweep's driver writes the items once (`python -m sweep.rq2 --decontaminate`): a JSON file
in the run storage named by the hash of its n and items, so every worker on any node reads the
same file and the name alone is its identity in stage ids. Each process builds the n-gram index
from it once (trainers/data/ngrams.py).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable

from core.ids import content_hash
from trainers.data.location import open_bytes
from trainers.data.ngrams import TestIndex, TestItem, build_index

FOLDER = "decontamination"
REASON = "contaminated:"


def items_payload(items: Iterable[TestItem], n: int) -> dict:
    """What the items file holds: the n-gram length and every item's test, id and texts, in
    one order (the same tests named in another order are the same items, the same file)."""
    return {"ngram": n, "items": sorted([i.test, i.id, list(i.texts)] for i in items)}


def items_rel(payload: dict) -> str:
    """The file's path in a storage, named by its content."""
    return f"{FOLDER}/{content_hash(payload)}.json"


def items_identity(location: str) -> str:
    """What stands for the items in stage ids: the content hash their file is named by, the
    same in any storage."""
    return location.rstrip("/").rsplit("/", 1)[-1].removesuffix(".json")


@functools.lru_cache(maxsize=4)
def load_index(location: str) -> TestIndex:
    """The n-gram index of an items file, built once per process (Python's str hash is salted
    per process, so an index is never shipped, only rebuilt)."""
    try:
        payload = json.loads(open_bytes(location))
        items = [TestItem(test, item_id, tuple(texts)) for test, item_id, texts in
                 payload["items"]]
        return build_index(items, int(payload["ngram"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{location}: not a test-items file ({err})") from None


def contamination_reason(messages: list[dict], spec) -> str:
    """`contaminated:gsm8k` (or `contaminated:gsm8k+humaneval`) when the sample shares an n-gram
    with the test items of `spec.decontaminate`, else ""."""
    if not spec.decontaminate:
        return ""
    hits = load_index(spec.decontaminate).hits({"messages": messages})
    return REASON + "+".join(sorted(hits)) if hits else ""
