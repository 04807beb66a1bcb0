"""The built-in corpora (trainers.data.corpora) as training sources of a run storage: written once
into `corpora/<content hash>/` of the storage, so every process and node reads the same bytes,
and the fingerprint that stands for them in stage ids. The sweep and the finetune command both
come here, so the same stage gets the same id whichever of them plans it; so do the data
command and the evals' default held-out chats (`cached_builtin_specs`, in the local cache).
    python -c "from trainers.data.builtin_sources import builtin_folder as f; print(f({}, 0))"
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from core.cache import cache_root
from core.ids import content_hash, fingerprint_sources
from trainers.data.corpora import (
    CORPUS_VERSIONS,
    FILES,
    OPT_IN_FILES,
    specs_of,
    write_builtin_corpora,
    written_versions,
)
from trainers.data.decontamination import items_identity
from trainers.data.source_spec import NOCM, NOCM_BASE, SourceSpec
from trainers.data.tagging import NOCM_TAGS

if TYPE_CHECKING:  # the fingerprint is cheap: dry runs import no pyarrow through here
    from core.storage import Storage

METADATA = "metadata.json"  # written last: its presence means the folder is complete
TRAINED_ON = ("math", "code", "general")  # the corpora a recipe may name (with general_nocm)
HELD_OUT = ("math_test", "general_test")  # evaluation's splits: never trained on


def builtin_fingerprint(sizes: Mapping[str, int], seed: int,
                        decontaminate: str | None = None) -> dict:
    """What identifies each built-in training source in a stage id: its generator's version,
    the size and the seed fix its bytes, not the folder it lands in. `sizes` as the preset
    gives them (a size not given is None here; the generator uses its default).
    `decontaminate`: the test-items file the sources leave overlaps with, named by its hash."""
    def fields(name: str, corpus: str, exclude: tuple[str, ...] = ()) -> dict:
        out = {"location": f"builtin:{name}", "generator_version": CORPUS_VERSIONS[corpus],
               "size": sizes.get(corpus), "seed": seed, "exclude_tags": ",".join(exclude)}
        if decontaminate is not None:
            out["decontaminate"] = items_identity(decontaminate)
        return out

    out = {name: fields(name, name) for name in TRAINED_ON}
    out.update({name: fields(name, name) for name in OPT_IN_FILES if name in sizes})
    out[NOCM] = fields(NOCM, NOCM_BASE, NOCM_TAGS)
    return fingerprint_sources(out)


def builtin_folder(sizes: Mapping[str, int], seed: int) -> str:
    """The storage folder of the corpora of these sizes and this seed, named by everything
    that fixes their bytes."""
    return "corpora/" + content_hash({"sources": builtin_fingerprint(sizes, seed),
                                     "sizes": sorted(map(list, sizes.items())),
                                     "generator_versions": written_versions(sizes),
                                     "seed": seed})


def write_builtin_sources(storage: Storage, sizes: Mapping[str, int], seed: int, *,
                          poll_s: float = 1.0) -> dict[str, SourceSpec]:
    """name -> SourceSpec of the built-in corpora in `storage` (the held-out `math_test` and
    `general_test` included, and `general_nocm`), writing them first if no process has. One
    writer at a time (a lease); the others wait for its metadata.json."""
    from core.storage import Lease  # lazy: light command (dry run: no pyarrow)

    rel = builtin_folder(sizes, seed)
    lease = Lease(storage, f"{rel}.lock")
    while not storage.exists(f"{rel}/{METADATA}"):
        if not lease.try_acquire():
            time.sleep(poll_s)
            continue
        try:
            if not storage.exists(f"{rel}/{METADATA}"):
                _write(storage, rel, sizes, seed)
        finally:
            lease.release()
    written = {**FILES, **{n: f for n, f in OPT_IN_FILES.items() if n in sizes}}
    return specs_of({name: storage.uri_of(f"{rel}/{filename}")
                     for name, (filename, _) in written.items()})


def cached_builtin_specs(root: Path | None = None, sizes: Mapping[str, int] | None = None,
                         seed: int = 0) -> dict[str, SourceSpec]:
    """The built-in corpora in a local folder (default: the cache, `DMT_CACHE`), through the
    same writer and folder naming as a run storage: the data command's and the evals' default."""

    from core.storage import Storage  # lazy: light command (dry run: no pyarrow)

    return write_builtin_sources(Storage(root or cache_root()), sizes or {}, seed)


def _write(storage: Storage, rel: str, sizes: Mapping[str, int], seed: int) -> None:
    with tempfile.TemporaryDirectory(prefix="corpora-") as tmp:
        local = Path(tmp)
        write_builtin_corpora(local, dict(sizes), seed=seed)
        metadata = (local / METADATA).read_bytes()
        (local / METADATA).unlink()
        storage.upload_dir(local, rel)
        storage.write_bytes(f"{rel}/{METADATA}", metadata)
