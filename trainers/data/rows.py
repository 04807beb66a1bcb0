"""Rows of a source file: (line number, parsed object or a JSON error) from any location, the
step before a row becomes a record (trainers/data/sources.py) or a selection key
(trainers/data/scan.py). Local JSON lists and JSONL files are STREAMED (a chunk at a time, so a
90K-conversation ShareGPT file is never held whole); s3:// / gs:// files and Parquet are read
whole; a Hugging Face id is read through `datasets`.
    python -c "from trainers.data.rows import iter_rows; from trainers.data.sources import SourceSpec as S; print(next(iter_rows(S('g', 'tests/assets/eval_gsm8k.jsonl'))))"
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq

from trainers.data.location import is_remote, open_bytes
from trainers.data.records import RecordError
from trainers.data.source_spec import SourceSpec


class BadRow(Exception):
    """A row that cannot become a record; its message is the reject reason."""


def _parsed(line: str) -> object:
    """One JSONL line's object, or the reason it is not one (a counted reject, not a crash)."""
    try:
        return json.loads(line)
    except json.JSONDecodeError as err:
        return BadRow(f"malformed JSON ({err.msg})")


def json_lines(text: str) -> Iterator[tuple[int, object]]:
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield lineno, _parsed(line)


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
    yield from enumerate(pq.read_table(io.BytesIO(data)).to_pylist(), 1)


def hf_rows(spec: SourceSpec) -> Iterator[tuple[int, object]]:
    import datasets  # lazy: light command (no datasets)

    # At the revision the sweep resolved (core.content), so what is read is what the stage
    # ids name, even if the dataset is updated mid-sweep.
    content = spec.content or ""
    revision = content.removeprefix("hub:") if content.startswith("hub:") else None
    ds = datasets.load_dataset(spec.location, spec.hf_config, split=spec.split, revision=revision)
    yield from enumerate(ds, 1)


STREAM_CHUNK = 1 << 20  # characters read at a time from a local JSON list


def _stream_lines(f) -> Iterator[tuple[int, object]]:
    """`json_lines` over an open text file, one physical line at a time: each is split again
    by str.splitlines, so line numbers are exactly those `json_lines` gives the whole text."""
    lineno = 0
    for physical in f:
        for line in physical.splitlines():
            lineno += 1
            if line.strip():
                yield lineno, _parsed(line)


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
    """(line or row number, object) for every row; JSON errors come as `BadRow` objects. A local
    JSON or JSONL file is streamed (a 90K-conversation source is never held whole)."""
    loc = spec.location
    if not is_remote(loc) and not Path(loc).exists():
        if loc.startswith((".", "/")) or loc.endswith((".json", ".jsonl", ".parquet", ".gz")):
            raise RecordError(loc, None, "no such file")
        yield from hf_rows(spec)  # not a path: a Hugging Face dataset id
        return
    base = loc.removesuffix(".gz")
    if not is_remote(loc) and not base.endswith(".parquet"):
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
    data = open_bytes(loc)
    if base.endswith(".parquet"):
        yield from _parquet_rows(data)
        return
    text = data.decode("utf-8")
    if base.endswith(".json") and text.lstrip().startswith("["):
        yield from _json_list(text, loc)
    else:
        yield from json_lines(text)
