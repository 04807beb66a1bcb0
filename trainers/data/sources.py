"""Sources: where a corpus lives and how its rows become records of the one shape.

Formats: gsm8k (question/answer), rft (query/response), code_alpaca (instruction/input/output),
sharegpt (conversations of from/value) and messages; auto-detected from the first row's keys.
Locations: a local .json/.jsonl/.parquet (optionally .gz), an s3:// or gs:// URI (pyarrow.fs),
or a Hugging Face dataset id (`datasets.load_dataset`). See `read_records`.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from trainers.data.records import RecordError, Rejects, check_messages, content_id, make_record
from trainers.data.tagging import NOCM_TAGS

FORMATS = ("gsm8k", "rft", "code_alpaca", "sharegpt", "messages")
BUILTIN_SOURCES = ("math", "code", "general", "general_nocm", "math_test")

# ShareGPT speaker names seen in the wild (Vicuna, ShareGPT V3, Baize/Bard dumps) -> our roles.
SHAREGPT_ROLES = {
    "human": "user", "user": "user",
    "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
    "bing": "assistant", "bard": "assistant",
    "system": "system",
}


@dataclass(frozen=True)
class SourceSpec:
    """A named corpus: `location` is a local file, an s3:// / gs:// URI or a HF dataset id.
    `exclude_tags` removes samples the keyword tagger tags so (general_nocm: code, math)."""

    name: str
    location: str
    format: str = "auto"
    hf_config: str | None = None
    split: str = "train"
    exclude_tags: tuple[str, ...] = ()

    def __post_init__(self):
        if self.format != "auto" and self.format not in FORMATS:
            raise ValueError(f"source {self.name!r}: unknown format {self.format!r}; {FORMATS}")
        object.__setattr__(self, "exclude_tags", tuple(self.exclude_tags))


# The ablation's source (the paper's 4.2): the general corpus minus its code and math samples.
NOCM, NOCM_BASE = "general_nocm", "general"


def derive_nocm(general: SourceSpec) -> SourceSpec:
    """`general_nocm` from `general`: the same corpus, less the samples the keyword tagger tags
    code or math (ShareGPT 90K -> 63K in the paper). The one place this rule is written."""
    return replace(general, name=NOCM, exclude_tags=NOCM_TAGS)


def make_spec(name: str, location: str, fmt: str = "auto", **kw) -> SourceSpec:
    """A SourceSpec; the name `general_nocm` always means that corpus minus code and math."""
    spec = SourceSpec(name, location, fmt, **kw)
    return derive_nocm(spec) if name == NOCM and "exclude_tags" not in kw else spec


class _Bad(Exception):
    """A row that cannot become a record; its message is the reject reason."""


# ---- rows: (line number, parsed object or a JSON error) from any location ----------------------

def _is_remote(location: str) -> bool:
    """A URI (s3://, gs://, file://, ...): opened through pyarrow.fs, like Ray Data does."""
    return "://" in location


def _open_bytes(location: str) -> bytes:
    if _is_remote(location):
        from pyarrow import fs

        filesystem, path = fs.FileSystem.from_uri(location)
        with filesystem.open_input_stream(path) as stream:
            data = stream.read()
    else:
        data = Path(location).read_bytes()
    return gzip.decompress(data) if location.endswith(".gz") else data


def _json_lines(text: str) -> Iterator[tuple[int, object]]:
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as err:
            yield lineno, _Bad(f"malformed JSON ({err.msg})")


def list_elements(text: str, where: str, line: int | None = None):
    """(start, end, line, object) of each element of the JSON list in `text`, the line counting
    of a JSON list file. With `line` given, `text` is a run of elements (a part), the first on
    that line; without, the whole list, brackets included."""
    decoder = json.JSONDecoder()
    if line is None:
        pos, line = text.index("[") + 1, text.count("\n", 0, text.index("[")) + 1
    else:
        pos = 0
    last = pos
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            return
        line += text.count("\n", last, pos)
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise RecordError(where, err.lineno, f"malformed JSON list ({err.msg})") from None
        yield pos, end, line, obj
        last, pos = pos, end


def _json_list(text: str, where: str) -> Iterator[tuple[int, object]]:
    """Elements of a JSON list, each with the line it starts on. A list that does not parse is a
    whole-file error even when not strict: what follows the break cannot be counted."""
    for _, _, line, obj in list_elements(text, where):
        yield line, obj


def _parquet_rows(data: bytes) -> Iterator[tuple[int, object]]:
    import pyarrow.parquet as pq

    yield from enumerate(pq.read_table(io.BytesIO(data)).to_pylist(), 1)


def _hf_rows(spec: SourceSpec) -> Iterator[tuple[int, object]]:
    import datasets

    ds = datasets.load_dataset(spec.location, spec.hf_config, split=spec.split)
    yield from enumerate(ds, 1)


STREAM_CHUNK = 1 << 20  # characters read at a time from a local JSON list


def _stream_lines(f) -> Iterator[tuple[int, object]]:
    """`_json_lines` over an open text file, one physical line at a time: each is split again
    by str.splitlines, so line numbers are exactly those `_json_lines` gives the whole text."""
    lineno = 0
    for physical in f:
        for line in physical.splitlines():
            lineno += 1
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line)
            except json.JSONDecodeError as err:
                yield lineno, _Bad(f"malformed JSON ({err.msg})")


def _stream_list(f, where: str) -> Iterator[tuple[int, object]]:
    """`_json_list` over an open text file, holding one chunk (plus the element being read)
    at a time instead of the whole text: an element cut by the chunk's end is retried with more."""
    decoder = json.JSONDecoder()
    buf, pos, line, eof = "", 0, 1, False

    def more() -> None:
        nonlocal buf, pos, eof
        chunk = f.read(STREAM_CHUNK)
        eof = not chunk
        buf, pos = buf[pos:] + chunk, 0

    while (start := buf.find("[", pos)) < 0:
        line, pos = line + buf.count("\n", pos), len(buf)
        if eof:
            return
        more()
    line, pos = line + buf.count("\n", pos, start), start + 1
    while True:
        while pos < len(buf) and buf[pos] in " \t\r\n,":
            line, pos = line + (buf[pos] == "\n"), pos + 1
        if pos >= len(buf):
            if eof:
                return
            more()
            continue
        if buf[pos] == "]":
            return
        try:
            obj, end = decoder.raw_decode(buf, pos)
            cut = end >= len(buf) and not eof  # a number may go on in the next chunk
        except json.JSONDecodeError as err:
            if not eof:
                more()
                continue
            first = line - buf.count("\n", 0, pos)  # the line buf starts on
            raise RecordError(where, first + err.lineno - 1,
                              f"malformed JSON list ({err.msg})") from None
        if cut:
            more()
            continue
        yield line, obj
        line, pos = line + buf.count("\n", pos, end), end


def iter_rows(spec: SourceSpec) -> Iterator[tuple[int, object]]:
    """(line or row number, object) for every row; JSON errors come as `_Bad` objects. A local
    JSON or JSONL file is streamed (a 90K-conversation source is never held whole)."""
    loc = spec.location
    if not _is_remote(loc) and not Path(loc).exists():
        if loc.startswith((".", "/")) or loc.endswith((".json", ".jsonl", ".parquet", ".gz")):
            raise RecordError(loc, None, "no such file")
        yield from _hf_rows(spec)  # not a path: a Hugging Face dataset id
        return
    base = loc.removesuffix(".gz")
    if not _is_remote(loc) and not base.endswith(".parquet"):
        opener = gzip.open if loc.endswith(".gz") else open
        with opener(loc, "rt", encoding="utf-8", newline="") as f:
            head = f.read(4096)
            while head.isspace() and (more := f.read(4096)):
                head = more
            f.seek(0)
            if base.endswith(".json") and head.lstrip().startswith("["):
                yield from _stream_list(f, loc)
            else:
                yield from _stream_lines(f)
        return
    data = _open_bytes(loc)
    if base.endswith(".parquet"):
        yield from _parquet_rows(data)
        return
    text = data.decode("utf-8")
    if base.endswith(".json") and text.lstrip().startswith("["):
        yield from _json_list(text, loc)
    else:
        yield from _json_lines(text)


# ---- formats: raw row -> (messages, the source's own id or None) -------------------------------

def _field(row: dict, key: str) -> str:
    if key not in row or row[key] is None:
        raise _Bad(f"missing field: {key}")
    if not isinstance(row[key], str):
        raise _Bad(f"non-string field: {key}")
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
        raise _Bad("non-string field: input")
    prompt = f"{instruction}\n{extra}" if extra.strip() else instruction
    return _pair(prompt, output)


def _from_sharegpt(row: dict) -> list[dict]:
    turns = row.get("conversations")
    if turns is None:
        raise _Bad("missing field: conversations")
    if not isinstance(turns, list):
        raise _Bad("non-list field: conversations")
    messages = []
    for turn in turns:
        if not isinstance(turn, dict):
            raise _Bad("turn is not an object")
        speaker, value = _field(turn, "from"), _field(turn, "value")
        if speaker.lower() not in SHAREGPT_ROLES:
            raise _Bad(f"unknown role: {speaker}")
        messages.append({"role": SHAREGPT_ROLES[speaker.lower()], "content": value})
    return messages


def _from_messages(row: dict) -> list[dict]:
    messages = row.get("messages")
    if messages is None:
        raise _Bad("missing field: messages")
    if not isinstance(messages, list):
        raise _Bad("non-list field: messages")
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

def _convert(row: object, fmt: str, spec: SourceSpec, rejects: Rejects, where: str, max_chars):
    """(own id or None, messages) or raise _Bad."""
    if isinstance(row, _Bad):
        raise row
    if not isinstance(row, dict):
        raise _Bad("row is not a JSON object")
    messages = CONVERTERS[fmt](row)
    if fmt == "sharegpt":
        messages = _drop_leading_assistant(messages, rejects, where)
    reason = check_messages(messages, max_chars)
    if reason:
        raise _Bad(reason)
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
                    raise _Bad(f"unknown format (keys {sorted(row)})")
            elif fmt == "auto" and not isinstance(row, _Bad):
                raise _Bad("row is not a JSON object")
            own, messages = _convert(row, fmt, spec, rejects, where, max_chars)
        except _Bad as bad:
            if strict:
                raise RecordError(spec.location, line, str(bad)) from None
            rejects.add(str(bad), where)
            continue
        rid = own or content_id(messages)
        seen[rid] = seen.get(rid, 0) + 1
        if seen[rid] > 1:
            rejects.repair("duplicate id renamed id#k", where)
            rid = f"{rid}#{seen[rid]}"
        batch.append(make_record(rid, spec.name, messages))
        if len(batch) >= TAG_BATCH:
            yield from _exclude_tagged(batch, spec, rejects) if spec.exclude_tags else batch
            batch = []
    yield from _exclude_tagged(batch, spec, rejects) if spec.exclude_tags and batch else batch


def _exclude_tagged(records: list[dict], spec: SourceSpec, rejects: Rejects) -> list[dict]:
    """Remove samples the keyword tagger tags with any of `spec.exclude_tags`. Each removed
    sample is counted once, as `tag:code`, `tag:math` or `tag:code+math`."""
    from trainers.data.tagging import KeywordTagger, filter_general_nocm

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
