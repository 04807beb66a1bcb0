"""A source read by Ray Data in parts, so no record body ever passes through the driver.

`layout_source` (one Ray task per source) finds where the rows are: byte ranges cut at line or
JSON-list element boundaries, or row ranges of a Parquet file or a Hugging Face dataset, and the
format (`auto`: the first row whose keys name one, as `read_records` decides it). `scan_part`
turns one part's rows into small keys (ordinal, line, id, selection key, reject reason, repair,
why a valid row is excluded: a test set it overlaps or a tag); `read_part` turns the part's selected rows into records (source, id, messages).
Both parse a row with trainers.data.sources' own converters, so formats, ids and reject reasons
are exactly those of `read_records`. Used by trainers/data/pipeline.py; try it with
    python -m trainers.data --recipe "math=1/256,code=1/256,general=1/256"
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice, pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

from trainers.data.decontamination import contamination_reason
from trainers.data.location import is_remote, open_bytes
from trainers.data.records import RecordError, Rejects, content_id
from trainers.data.rows import BadRow, hf_rows, json_lines, list_elements
from trainers.data.selection import selection_key
from trainers.data.source_spec import SourceSpec
from trainers.data.sources import convert, detect_format
from trainers.data.tagging import KeywordTagger

KEY_COLUMNS = ["source", "ordinal", "line", "id", "key", "reason", "repair", "excluded"]
NO_MORE = 2**62  # the ordinal bound of a source's last part
ROWS_PER_PART = 5000  # parts per source: rows // this, at least 1, at most MAX_PARTS
MAX_PARTS = 64


@dataclass(frozen=True)
class Part:
    """Rows of one source: bytes [start, end) of a `lines` or `list` file, or rows [start, end)
    of a `table` (Parquet, Hugging Face). Ordinals (file order, unique) run from `first_ordinal`
    to below `end_ordinal`; `first_line` is the line (or row number) of the part's first row."""

    source: str
    kind: str
    start: int
    end: int
    first_line: int
    first_ordinal: int
    end_ordinal: int


@dataclass(frozen=True)
class SourceLayout:
    """A source's parts and format. `fmt` None: no row names a format; rows before ordinal
    `detect_ordinal` precede the detection. `error`: a file error's (path, line, reason), raised
    after the parts' rows are counted (a malformed JSON list is a whole-file error, as in
    `read_records`); kept as plain values, since a RecordError does not unpickle."""

    source: str
    parts: tuple[Part, ...]
    fmt: str | None
    detect_ordinal: int
    error: tuple | None = None

    def raise_error(self) -> None:
        if self.error is not None:
            raise RecordError(*self.error)


# ---- layout: one Ray task per source --------------------------------------------------------

def layout_source(spec: SourceSpec, n_parts: int | None = None) -> SourceLayout:
    """The layout of `spec`; errors come back inside it, never as a Ray task failure, so the
    driver raises them in recipe order with their own type and message."""
    try:
        kind = _kind(spec)
        if kind == "table":
            return _layout_table(spec, n_parts)
        text = open_bytes(spec.location).decode("utf-8")
        if kind == "list" or _is_list(spec, text):
            return _layout_list(spec, text, n_parts)
        return _layout_lines(spec, text, n_parts)
    except RecordError as err:
        return SourceLayout(spec.name, (), None, NO_MORE, _located(err))


def _located(err: RecordError) -> tuple:
    return err.path, err.line, err.reason


def _kind(spec: SourceSpec) -> str:
    """`table`, `list` or `lines` (or `text`: lines or a list, seen once the text is read),
    the same dispatch as rows.iter_rows."""
    loc = spec.location
    if not is_remote(loc) and not Path(loc).exists():
        if loc.startswith((".", "/")) or loc.endswith((".json", ".jsonl", ".parquet", ".gz")):
            raise RecordError(loc, None, "no such file")
        return "table"  # a Hugging Face dataset id
    return "table" if loc.removesuffix(".gz").endswith(".parquet") else "text"


def _is_list(spec: SourceSpec, text: str) -> bool:
    return spec.location.removesuffix(".gz").endswith(".json") and text.lstrip().startswith("[")


def _how_many_parts(n_rows: int, n_parts: int | None) -> int:
    wanted = n_parts or min(MAX_PARTS, n_rows // ROWS_PER_PART)
    return max(1, min(wanted, n_rows))


def _detect(spec: SourceSpec, rows: Iterator[tuple[int, object]]) -> tuple[str | None, int]:
    """(format, ordinal of the row that decides it); rows are (ordinal, object)."""
    if spec.format != "auto":
        return spec.format, 0
    for ordinal, row in rows:
        if isinstance(row, dict) and detect_format(row):
            return detect_format(row), ordinal
    return None, NO_MORE


def _layout_lines(spec: SourceSpec, text: str, n_parts: int | None) -> SourceLayout:
    """Cuts after a newline; each part's first line counted as str.splitlines counts (as
    rows.json_lines does), so line numbers match on any text."""
    data = text.encode("utf-8")
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n"))
    parts_wanted = _how_many_parts(len(newlines) + 1, n_parts)
    step = -(-len(newlines) // parts_wanted) if len(newlines) else 1
    cuts = [0] + [int(newlines[i]) + 1 for i in range(step - 1, len(newlines) - 1, step)]
    cuts = sorted(set(cuts)) + [len(data)]
    starts, line = [], 1
    for start, end in pairwise(cuts):
        starts.append((start, end, line))
        line += len(data[start:end].decode("utf-8").splitlines())
    parts = tuple(Part(spec.name, "lines", s, e, first, first, nxt)
                  for (s, e, first), nxt in zip(starts, [t[2] for t in starts[1:]] + [NO_MORE]))
    return SourceLayout(spec.name, parts, *_detect(spec, json_lines(text)))


def _layout_list(spec: SourceSpec, text: str, n_parts: int | None) -> SourceLayout:
    """Every element's start is found once (one full parse, in this task); parts are cut at
    element starts. A list that breaks is kept up to the break, and the break is the error."""
    starts, error, fmt, detect_at, last_end = [], None, None, NO_MORE, 0
    try:
        for ordinal, (pos, end, line, obj) in enumerate(list_elements(text, spec.location)):
            starts.append((pos, line))
            last_end = end
            if fmt is None and isinstance(obj, dict) and detect_format(obj):
                fmt, detect_at = detect_format(obj), ordinal
    except RecordError as err:
        error = _located(err)
    if spec.format != "auto":
        fmt, detect_at = spec.format, 0
    if not starts:
        return SourceLayout(spec.name, (), fmt, detect_at, error)
    step = -(-len(starts) // _how_many_parts(len(starts), n_parts))
    firsts = list(range(0, len(starts), step))
    char_bounds = [starts[i][0] for i in firsts] + [last_end]
    byte_bounds = _byte_offsets(text, char_bounds)
    parts = tuple(Part(spec.name, "list", byte_bounds[k], byte_bounds[k + 1], starts[i][1], i,
                       firsts[k + 1] if k + 1 < len(firsts) else NO_MORE)
                  for k, i in enumerate(firsts))
    return SourceLayout(spec.name, parts, fmt, detect_at, error)


def _byte_offsets(text: str, char_positions: list[int]) -> list[int]:
    """UTF-8 byte offsets of increasing character positions."""
    out, last, offset = [], 0, 0
    for pos in char_positions:
        offset += len(text[last:pos].encode("utf-8"))
        out.append(offset)
        last = pos
    return out




def _layout_table(spec: SourceSpec, n_parts: int | None) -> SourceLayout:
    n_rows = sum(1 for _ in table_rows(spec))
    k = _how_many_parts(n_rows, n_parts)
    bounds = sorted({n_rows * i // k for i in range(k + 1)})
    parts = tuple(Part(spec.name, "table", a, b, a + 1, a + 1, b + 1 if b < n_rows else NO_MORE)
                  for a, b in pairwise(bounds))
    return SourceLayout(spec.name, parts, *_detect(spec, table_rows(spec)))


def table_rows(spec: SourceSpec, start: int = 0, end: int | None = None):
    """(row number from 1, row) of a Parquet file or a Hugging Face dataset, rows [start, end)."""
    if spec.location.removesuffix(".gz").endswith(".parquet"):

        table = pq.read_table(io.BytesIO(open_bytes(spec.location)))
        table = table.slice(start, (end if end is not None else len(table)) - start)
        return enumerate(table.to_pylist(), start + 1)
    return islice(hf_rows(spec), start, end)


# ---- reading a part ---------------------------------------------------------------------------

def part_rows(spec: SourceSpec, part: Part) -> Iterator[tuple[int, int, object]]:
    """(ordinal, line, object or BadRow) of every row of the part, in file order."""
    if part.kind == "table":
        for number, row in table_rows(spec, part.start, part.end):
            yield number, number, row
        return
    text = _read_range(spec.location, part.start, part.end).decode("utf-8")
    if part.kind == "lines":
        for line, row in json_lines(text):
            yield line + part.first_line - 1, line + part.first_line - 1, row
        return
    elements = list_elements(text, spec.location, line=part.first_line)
    for k, (_, _, line, row) in enumerate(elements):
        yield part.first_ordinal + k, line, row


def _read_range(location: str, start: int, end: int) -> bytes:
    if location.endswith(".gz"):
        return open_bytes(location)[start:end]  # a gzip stream cannot be entered midway
    if is_remote(location):
        filesystem, path = fs.FileSystem.from_uri(location)
        with filesystem.open_input_file(path) as f:
            return f.read_at(end - start, start)
    with open(location, "rb") as f:
        f.seek(start)
        return f.read(end - start)


@dataclass(frozen=True)
class Parsed:
    """One row parsed: messages and own id (None: a content hash is its id) or a reject
    reason; `repair` names a change made on the way in (kept or not, as read_records counts)."""

    own: str | None
    messages: list[dict] | None
    reason: str
    repair: str


def parse_row(row: object, ordinal: int, layout: SourceLayout, spec: SourceSpec,
              max_chars: int | None) -> Parsed:
    """sources.read_records' handling of one row, given where the format was detected."""
    repairs = Rejects()
    try:
        if layout.fmt is None or ordinal < layout.detect_ordinal:
            _refuse_undetected(row)
        own, messages = convert(row, layout.fmt, spec, repairs, "", max_chars)
    except BadRow as bad:
        return Parsed(None, None, str(bad), next(iter(repairs.repairs), ""))
    return Parsed(own, messages, "", next(iter(repairs.repairs), ""))


def _refuse_undetected(row: object) -> None:
    if isinstance(row, BadRow):
        raise row
    if isinstance(row, dict):
        raise BadRow(f"unknown format (keys {sorted(row)})")
    raise BadRow("row is not a JSON object")


def excluded_by(messages: list[dict], spec: SourceSpec) -> str:
    """Why a valid sample is left out after its id is fixed, as read_records decides it: a test
    set it overlaps (checked first), or a tag `spec` excludes; "" when it is kept."""
    return contamination_reason(messages, spec) or excluding_tag(messages, spec)


def excluding_tag(messages: list[dict], spec: SourceSpec) -> str:
    """`tag:code`, `tag:math`, `tag:code+math` when the keyword tagger removes the sample from
    `spec` (general_nocm), else ""."""
    if not spec.exclude_tags:
        return ""

    tags = KeywordTagger().tags([{"messages": messages}])[0]
    hit = [t for t in spec.exclude_tags if t in tags]
    return "tag:" + "+".join(hit) if hit else ""


# ---- the two Ray Data passes' functions (map_batches over parts, one part per batch) -----------

def scan_part(batch, specs: dict, layouts: dict, seed: int, max_chars: int | None):
    """Pass 1: every row of a part as small keys (KEY_COLUMNS), never its messages."""
    for item in _items(batch):
        part = Part(**{k: item[k] for k in Part.__dataclass_fields__})
        spec, layout = specs[part.source], layouts[part.source]
        cols = {name: [] for name in KEY_COLUMNS}
        for ordinal, line, row in part_rows(spec, part):
            parsed = parse_row(row, ordinal, layout, spec, max_chars)
            rid = "" if parsed.reason else (parsed.own or content_id(parsed.messages))
            values = (part.source, ordinal, line, rid,
                      selection_key(seed, part.source, rid) if rid else b"",
                      parsed.reason, parsed.repair,
                      excluded_by(parsed.messages, spec) if rid else "")
            for name, value in zip(KEY_COLUMNS, values):
                cols[name].append(value)
        yield pa.table({**cols, "key": pa.array(cols["key"], type=pa.binary()),
                        "ordinal": pa.array(cols["ordinal"], type=pa.int64()),
                        "line": pa.array(cols["line"], type=pa.int64()),
                        "source": pa.array(cols["source"], type=pa.string())})


def read_part(batch, specs: dict, layouts: dict, max_chars: int | None):
    """Pass 2: a part's selected rows (ordinals and final ids sent along) as (source, id,
    messages), parsed exactly as in pass 1."""
    for item in _items(batch):
        part = Part(**{k: item[k] for k in Part.__dataclass_fields__})
        spec, layout = specs[part.source], layouts[part.source]
        wanted = dict(zip(np.frombuffer(item["ordinals"], dtype=np.int64).tolist(),
                          json.loads(item["ids"])))
        rows = {"source": [], "id": [], "messages": []}
        for ordinal, _, row in part_rows(spec, part):
            if ordinal in wanted:
                rows["source"].append(part.source)
                rows["id"].append(wanted[ordinal])
                rows["messages"].append(parse_row(row, ordinal, layout, spec, max_chars).messages)
        if rows["id"]:
            yield rows


def _items(batch) -> list[dict]:
    """The part items of a pyarrow batch (from_items of Part fields)."""
    return batch.to_pylist()


def part_item(part: Part, **extra) -> dict:
    return {**{k: getattr(part, k) for k in Part.__dataclass_fields__}, **extra}
