"""Where generation and scoring meet: eval specs and JSONL records, so either side reruns alone.

An `EvalSpec` names an evaluation and everything that decides its numbers (version, decoding,
stop strings). Generation writes one record per example (`id`, `prompt`, `completion`, plus the
spec); scoring reads them back. Bad lines raise `RecordError(path, line, reason)`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from trainers.data.records import RecordError

__all__ = ["METRIC_KINDS", "EvalSpec", "Progress", "RecordError", "iter_jsonl", "kinds_of",
           "read_jsonl", "write_jsonl"]

# How a long step of an eval says how far it is: progress(items done, items in all).
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EvalSpec:
    """One evaluation's identity: change any field and cached results no longer apply."""

    name: str
    version: str
    max_new_tokens: int
    stop: tuple[str, ...]
    temperature: float = 0.0
    n_samples: int = 1

    def to_dict(self) -> dict:
        return {**asdict(self), "stop": list(self.stop)}

    @classmethod
    def from_dict(cls, data: dict) -> EvalSpec:
        return cls(**{**data, "stop": tuple(data["stop"])})


def _open(path: Path, mode: str):
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")
    return open(path, mode, encoding="utf-8")


def _remote_lines(uri: str) -> list[str]:
    """A file in object storage (s3://, gs://, ...: a sweep's held-out split lives there)."""
    import pyarrow.fs as pafs  # lazy: light command (local files: no pyarrow)

    filesystem, path = pafs.FileSystem.from_uri(uri)
    try:
        with filesystem.open_input_stream(path) as stream:
            data = stream.read()
    except FileNotFoundError:
        raise RecordError(uri, None, "no such file") from None
    return (gzip.decompress(data) if uri.endswith(".gz") else data).decode().splitlines()


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; a line that is not a JSON object raises.
    `path`: a local file or a URI (s3://, gs://)."""
    if "://" in str(path):
        yield from _parse_lines(str(path), _remote_lines(str(path)))
        return
    path = Path(path)
    if not path.is_file():
        raise RecordError(str(path), None, "no such file")
    with _open(path, "r") as f:
        yield from _parse_lines(str(path), f)


def _parse_lines(where: str, lines: Iterable[str]) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RecordError(where, number, f"not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise RecordError(where, number, f"expected a JSON object, got {type(obj).__name__}")
        yield number, obj


def read_jsonl(path: str | Path) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    """Write atomically (a temporary file renamed into place), so a reader never sees half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with _open(tmp, "w") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return path


# Each metric's kind decides its interval and paired test (evals/stats.py): "binary" (0/1 per
# item: Wilson, exact McNemar) or "continuous" (any number per item: bootstrap, sign-flip). An
# evaluator may name its own in its result's "kinds" (lm-eval tasks do).
METRIC_KINDS = {"accuracy_strict": "binary", "accuracy_flexible": "binary", "pass@1": "binary",
                "ref_logprob": "continuous", "score": "continuous",
                "general_loss": "continuous"}


def kinds_of(result: Mapping[str, Any]) -> dict[str, str]:
    """The kind of each metric that has per-item outcomes in `result`."""
    own = dict(result.get("kinds") or {})
    itemized = dict.fromkeys(i["metric"] for i in result.get("items") or ())
    missing = [m for m in itemized if m not in own and m not in METRIC_KINDS]
    if missing:
        raise ValueError(f"{result.get('eval', 'eval')}: metrics {missing} have no kind "
                         "(binary or continuous)")
    return {m: own.get(m) or METRIC_KINDS[m] for m in itemized}
