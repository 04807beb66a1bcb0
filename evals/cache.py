"""Eval results cached by what determines them, so no checkpoint is evaluated twice alike.

A key is (model identity, eval name and version, decoding settings, limit, data identity); the
model identity is a preset's name, a stage checkpoint's stage id (from its manifest.json), or a
hash of a folder's config and weight-file stats. One JSON file per key, written atomically.
Used by `evals.run.evaluate(..., cache_dir=DIR)`. A result is stored whole, its per-item
outcomes (`items`) included; evaluate() recomputes a stored result that has none (one written
before they existed).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.model import PRESETS

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")


@dataclass(frozen=True)
class EvalKey:
    model: str
    eval_name: str
    eval_version: str
    decoding: str  # canonical JSON of the decoding (and judging) settings
    limit: int | None
    data: str = ""

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]


def make_key(model: str, eval_name: str, eval_version: str, decoding: Mapping[str, Any],
             limit: int | None, data: str = "") -> EvalKey:
    return EvalKey(model, eval_name, str(eval_version),
                   json.dumps(dict(decoding), sort_keys=True, default=str), limit, data)


def _stat_fingerprint(folder: Path) -> str:
    """config.json's bytes plus each weight file's name, size and mtime: cheap, and any rewrite
    of the weights changes it."""
    h = hashlib.sha256()
    config = folder / "config.json"
    if config.is_file():
        h.update(config.read_bytes())
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in WEIGHT_SUFFIXES:
            st = path.stat()
            h.update(f"{path.relative_to(folder)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def model_identity(model: Any) -> str | None:
    """Identity of a preset name, HF id or checkpoint folder; None for an object in memory
    (nothing says which weights it holds: the caller must name it)."""
    if not isinstance(model, (str, os.PathLike)):
        return None

    name = str(model)
    if name in PRESETS:
        return f"preset:{name}"
    path = Path(name).expanduser()
    if path.is_dir():
        manifest = path / "manifest.json"
        if manifest.is_file():
            stage = json.loads(manifest.read_text()).get("stage_id")
            if stage:
                return f"stage:{stage}"
        return f"path:{path.resolve()}:{_stat_fingerprint(path)}"
    if path.exists():
        st = path.stat()
        return f"file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return f"hf:{name}"


def data_identity(location: str | os.PathLike | None) -> str:
    """A local data file by its path, size and mtime; anything else (a HF id) as given."""
    if location is None:
        return ""
    path = Path(location).expanduser()
    if path.is_file():
        st = path.stat()
        return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if path.is_dir():
        h = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            st = file.stat()
            h.update(f"{file.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        return f"{path.resolve()}:{h.hexdigest()[:16]}"
    return str(location)


class EvalCache:
    """`get(key)` -> the stored result or None; `put(key, result)` writes it atomically."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, key: EvalKey) -> Path:
        return self.root / key.eval_name / f"{key.digest()}.json"

    def get(self, key: EvalKey) -> dict | None:
        path = self.path(key)
        if not path.is_file():
            return None
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("key") != asdict(key):
            return None  # a digest collision or a hand-edited file: never a wrong result
        return stored["result"]

    def put(self, key: EvalKey, result: Mapping[str, Any]) -> Path:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"key": asdict(key), "result": dict(result)}, indent=1,
                             default=str)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # readers see the old file or the whole new one
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path
