"""Sources: where a corpus lives and how its rows become records of the one shape.

Formats: gsm8k (question/answer), rft (query/response), code_alpaca (instruction/input/output),
sharegpt (conversations of from/value) and messages; auto-detected from the first row's keys.
Locations: a local .json/.jsonl/.parquet (optionally .gz), an s3:// or gs:// URI (pyarrow.fs),
or a Hugging Face dataset id (`datasets.load_dataset`). See `read_records`.
"""

from __future__ import annotations

from collections.abc import Iterator

from trainers.data.decontamination import contamination_reason
from trainers.data.records import RecordError, Rejects, check_messages, content_id, make_record
from trainers.data.rows import BadRow, iter_rows
from trainers.data.source_spec import SourceSpec
from trainers.data.tagging import KeywordTagger, filter_general_nocm

# ShareGPT speaker names seen in the wild (Vicuna, ShareGPT V3, Baize/Bard dumps) -> our roles.
SHAREGPT_ROLES = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
    "bing": "assistant", "bard": "assistant",
    "system": "system",
}


# ---- formats: raw row -> (messages, the source's own id or None) -------------------------------

def _field(row: dict, key: str) -> str:
    if key not in row or row[key] is None:
        raise BadRow(f"missing field: {key}")
    if not isinstance(row[key], str):
        raise BadRow(f"non-string field: {key}")
    return row[key]


def _pair(user: str, assistant: str) -> list[dict]:
    return [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def _from_gsm8k(row: dict) -> list[dict]:
    return _pair(_field(row, "question"), _field(row, "answer"))


def _from_rft(row: dict) -> list[dict]:
    return _pair(_field(row, "query"), _field(row, "response"))


def _from_code_alpaca(row: dict) -> list[dict]:
    """Alpaca convention: a non-empty `input` follows the instruction after a newline."""
    instruction, output = _field(row, "instruction"), _field(row, "output")
    extra = row.get("input") or ""
    if not isinstance(extra, str):
        raise BadRow("non-string field: input")
    prompt = f"{instruction}\n{extra}" if extra.strip() else instruction
    return _pair(prompt, output)


def _from_sharegpt(row: dict) -> list[dict]:
    turns = row.get("conversations")
    if turns is None:
        raise BadRow("missing field: conversations")
    if not isinstance(turns, list):
        raise BadRow("non-list field: conversations")
    messages = []
    for turn in turns:
        if not isinstance(turn, dict):
            raise BadRow("turn is not an object")
        speaker, value = _field(turn, "from"), _field(turn, "value")
        if speaker.lower() not in SHAREGPT_ROLES:
            raise BadRow(f"unknown role: {speaker}")
        messages.append({"role": SHAREGPT_ROLES[speaker.lower()], "content": value})
    return messages


def _from_messages(row: dict) -> list[dict]:
    messages = row.get("messages")
    if messages is None:
        raise BadRow("missing field: messages")
    if not isinstance(messages, list):
        raise BadRow("non-list field: messages")
    return [dict(m) if isinstance(m, dict) else m for m in messages]


CONVERTERS = {
    "gsm8k": _from_gsm8k, "rft": _from_rft, "code_alpaca": _from_code_alpaca,
    "sharegpt": _from_sharegpt, "messages": _from_messages,
}


def detect_format(row: dict) -> str | None:
    """The format whose keys `row` has. One identifying key decides, so a row missing the other
    is reported as a missing field; instruction comes first (new_codealpaca also has `response`)."""
    keys = set(row)
    for fmt, markers in (("sharegpt", {"conversations"}), ("messages", {"messages"}),
                         ("code_alpaca", {"instruction"}), ("gsm8k", {"question"}),
                         ("rft", {"query"}), ("gsm8k", {"answer"}), ("rft", {"response"}),
                         ("code_alpaca", {"output"})):
        if keys & markers:
            return fmt
    return None


def _drop_leading_assistant(messages: list[dict], rejects: Rejects, where: str) -> list[dict]:
    """ShareGPT V3 splits long chats, so a part may open with the model's turn; FastChat's
    trainer drops that first turn, and so do we (counted as a repair, not silently)."""
    if len(messages) > 1 and messages[0]["role"] == "assistant":
        rejects.repair("dropped leading assistant turn (ShareGPT split)", where)
        return messages[1:]
    return messages


# ---- records --------------------------------------------------------------------------------

def convert(row: object, fmt: str, spec: SourceSpec, rejects: Rejects, where: str, max_chars):
    """(own id or None, messages) or raise BadRow."""
    if isinstance(row, BadRow):
        raise row
    if not isinstance(row, dict):
        raise BadRow("row is not a JSON object")
    messages = CONVERTERS[fmt](row)
    if fmt == "sharegpt":
        messages = _drop_leading_assistant(messages, rejects, where)
    reason = check_messages(messages, max_chars)
    if reason:
        raise BadRow(reason)
    own = row.get("id")
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]  # drop extras
    return (str(own) if own is not None and str(own).strip() else None), messages


def read_records(
    spec: SourceSpec, strict: bool = False, rejects: Rejects | None = None,
    max_chars: int | None = None,
) -> list[dict]:
    """Valid records of `spec` in file order. Left-out rows are counted in `rejects` by reason
    (with file:line examples); `strict` raises RecordError on the first instead.

    Ids: the row's own `id` where it has one, else a content hash of the messages. A repeated id
    keeps its first occurrence as is; the k-th repeat (file order) becomes `id#k`, counted as a
    repair, so ids are unique and deterministic for a given file.
    """
    return list(iter_records(spec, strict, rejects, max_chars))


TAG_BATCH = 1024  # records tagged at a time when streaming (the keyword tagger is per record)


def iter_records(
    spec: SourceSpec, strict: bool = False, rejects: Rejects | None = None,
    max_chars: int | None = None,
) -> Iterator[dict]:
    """`read_records`, one record at a time: what a pass over a large source (decontamination)
    reads, holding only a batch of records and the ids seen."""
    rejects = rejects if rejects is not None else Rejects()
    fmt = spec.format
    seen: dict[str, int] = {}
    batch: list[dict] = []
    for line, row in iter_rows(spec):
        where = f"{spec.location}:{line}"
        try:
            if fmt == "auto" and isinstance(row, dict):
                fmt = detect_format(row) or "auto"
                if fmt == "auto":
                    raise BadRow(f"unknown format (keys {sorted(row)})")
            elif fmt == "auto" and not isinstance(row, BadRow):
                raise BadRow("row is not a JSON object")
            own, messages = convert(row, fmt, spec, rejects, where, max_chars)
        except BadRow as bad:
            if strict:
                raise RecordError(spec.location, line, str(bad)) from None
            rejects.add(str(bad), where)
            continue
        rid = own or content_id(messages)
        seen[rid] = seen.get(rid, 0) + 1
        if seen[rid] > 1:
            rejects.repair("duplicate id renamed id#k", where)
            rid = f"{rid}#{seen[rid]}"
        # After the ids are fixed, so leaving a sample out renames none of the others.
        contaminated = contamination_reason(messages, spec)
        if contaminated:
            rejects.add(contaminated, f"{spec.location}#{rid}")
            continue
        batch.append(make_record(rid, spec.name, messages))
        if len(batch) >= TAG_BATCH:
            yield from _exclude_tagged(batch, spec, rejects) if spec.exclude_tags else batch
            batch = []
    yield from _exclude_tagged(batch, spec, rejects) if spec.exclude_tags and batch else batch


def _exclude_tagged(records: list[dict], spec: SourceSpec, rejects: Rejects) -> list[dict]:
    """Remove samples the keyword tagger tags with any of `spec.exclude_tags`. Each removed
    sample is counted once, as `tag:code`, `tag:math` or `tag:code+math`."""
    tagger = _RememberingTagger(KeywordTagger())
    kept, _ = filter_general_nocm(records, tagger, exclude=spec.exclude_tags)
    for record, tags in zip(records, tagger.tag_sets):
        hit = [t for t in spec.exclude_tags if t in tags]
        if hit:
            rejects.add("tag:" + "+".join(hit), f"{spec.location}#{record['id']}")
    return kept


class _RememberingTagger:
    """Keeps the tag sets it hands out, so each removal is counted under its own tags."""

    def __init__(self, tagger):
        self.tagger, self.tag_sets = tagger, []

    def tags(self, records: list[dict]) -> list[set[str]]:
        self.tag_sets = self.tagger.tags(records)
        return self.tag_sets
