"""The one record shape every source is turned into, its validation, and reject counting.

A record is `{"id": str, "source": str, "messages": [{"role", "content"}, ...]}` with roles
user/assistant after an optional leading system turn, alternating, ending with the assistant.
Nothing is dropped silently: `Rejects` counts every left-out record by reason, with the first few
`file:line` examples, and `RecordError(path, line, reason)` is what `--strict` raises.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

ROLES = ("system", "user", "assistant")
MAX_EXAMPLES = 3


class RecordError(ValueError):
    """A bad record (or file), located: str() reads 'path:line: reason'."""

    def __init__(self, path: str, line: int | None, reason: str):
        self.path, self.line, self.reason = str(path), line, reason
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {reason}")


@dataclass
class Rejects:
    """Counts of left-out records by reason (plus repairs made to kept ones), with examples.

    `counts` are records left out; `repairs` are kept records that were changed on the way in
    (e.g. a ShareGPT split starting with an assistant turn, whose first turn FastChat drops).
    """

    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    repairs: Counter = field(default_factory=Counter)
    repair_examples: dict[str, list[str]] = field(default_factory=dict)

    def add(self, reason: str, where: str = "", n: int = 1) -> None:
        self.counts[reason] += n
        if where and len(self.examples.setdefault(reason, [])) < MAX_EXAMPLES:
            self.examples[reason].append(where)

    def repair(self, what: str, where: str = "") -> None:
        self.repairs[what] += 1
        if where and len(self.repair_examples.setdefault(what, [])) < MAX_EXAMPLES:
            self.repair_examples[what].append(where)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: Rejects) -> Rejects:
        """Add `other` into self (returns self, so merges chain)."""
        _merge_into(self.counts, self.examples, other.counts, other.examples)
        _merge_into(self.repairs, self.repair_examples, other.repairs, other.repair_examples)
        return self

    def to_dict(self) -> dict:
        return {
            "total": self.total,
            "counts": dict(sorted(self.counts.items())),
            "examples": {k: list(v) for k, v in sorted(self.examples.items()) if v},
            "repairs": dict(sorted(self.repairs.items())),
            "repair_examples": {k: list(v) for k, v in sorted(self.repair_examples.items()) if v},
        }

    @classmethod
    def from_dict(cls, data: dict) -> Rejects:
        return cls(
            Counter(data.get("counts", {})),
            {k: list(v) for k, v in data.get("examples", {}).items()},
            Counter(data.get("repairs", {})),
            {k: list(v) for k, v in data.get("repair_examples", {}).items()},
        )

    def report(self, indent: str = "  ") -> str:
        if not self.counts and not self.repairs:
            return f"{indent}no rejects"
        lines = [f"{indent}rejected {self.total}:"] if self.counts else []
        for reason, n in sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0])):
            eg = ", ".join(self.examples.get(reason, []))
            lines.append(f"{indent}  {n:6d}  {reason}" + (f"  (e.g. {eg})" if eg else ""))
        for what, n in sorted(self.repairs.items(), key=lambda kv: (-kv[1], kv[0])):
            eg = ", ".join(self.repair_examples.get(what, []))
            lines.append(f"{indent}kept, repaired {n}: {what}" + (f"  (e.g. {eg})" if eg else ""))
        return "\n".join(lines)

    __str__ = report


def _merge_into(counts: Counter, examples: dict, more: Counter, more_examples: dict) -> None:
    for key, n in more.items():
        counts[key] += n
        extra = more_examples.get(key, [])
        if extra:
            mine = examples.setdefault(key, [])
            mine.extend(extra[: MAX_EXAMPLES - len(mine)])


def content_id(messages: list[dict]) -> str:
    """Stable id from the normalized conversation: same text, same id, on any machine."""
    canon = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False)
    return "h" + hashlib.sha256(canon.encode("utf-8")).hexdigest()[:20]


def check_messages(messages: object, max_chars: int | None = None) -> str | None:
    """The reason a conversation is invalid, or None. Roles: optional system, then
    user/assistant alternating, ending with assistant."""
    if not isinstance(messages, list) or not messages:
        return "empty conversation"
    for turn in messages:
        if not isinstance(turn, dict):
            return "turn is not an object"
        for key in ("role", "content"):
            if key not in turn:
                return f"missing field: {key}"
            if not isinstance(turn[key], str):
                return f"non-string field: {key}"
        if turn["role"] not in ROLES:
            return f"unknown role: {turn['role']}"
        if not turn["content"].strip():
            return f"empty turn: {turn['role']}"
    roles = [t["role"] for t in messages]
    body = roles[1:] if roles[0] == "system" else roles
    if "user" not in body:
        return "no user turn"
    for i, role in enumerate(body):
        if role != ("user" if i % 2 == 0 else "assistant"):
            return "roles do not alternate user/assistant"
    if body[-1] != "assistant":
        return "ends without an assistant turn"
    if max_chars is not None and sum(len(t["content"]) for t in messages) > max_chars:
        return f"over length limit ({max_chars} chars)"
    return None


def make_record(rid: str, source: str, messages: list[dict]) -> dict:
    return {"id": rid, "source": source, "messages": messages}
