"""Run storage (a local folder or an s3:// / gs:// / file:// URI through pyarrow.fs) and the lease
lock that lets many processes share it: JSON files written atomically, folders copied in and out
(remote folders cached locally), and `Lease`, a heartbeat lock file whose holder may crash.
Claims are atomic on local folders (hard links) and on S3 (conditional puts through boto3,
core/s3_conditional.py); on gs:// they are best effort (check-then-put).
    python -c "from core.storage import Storage; print(Storage('./runs').uri)"
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Self

import pyarrow.fs as pafs

from core import s3_conditional
from core.cache import node_cache_root

CACHE_MARK = ".complete"


class Storage:
    """Files under one root. `rel` paths use "/" and never start with it."""

    def __init__(self, uri: str | os.PathLike):
        text = os.fspath(uri)
        if "://" not in text:
            text = str(Path(text).expanduser().resolve())
        self.uri = text.rstrip("/") or "/"
        self.fs, self.root = pafs.FileSystem.from_uri(self.uri)
        self.root = self.root.rstrip("/")
        self.is_local = isinstance(self.fs, pafs.LocalFileSystem)
        self.scheme = "file" if self.is_local else self.uri.split("://", 1)[0]

    def __repr__(self) -> str:
        return f"Storage({self.uri!r})"

    def path(self, rel: str) -> str:
        """The filesystem path of `rel` (for self.fs)."""
        rel = rel.strip("/")
        return f"{self.root}/{rel}" if rel else self.root

    def uri_of(self, rel: str) -> str:
        """What other tools take (Ray's storage_path): a local path, or the full URI."""
        if self.is_local:
            return self.path(rel)
        scheme = self.uri.split("://", 1)[0]
        return f"{scheme}://{self.path(rel)}"

    def local_path(self, rel: str) -> Path:
        if not self.is_local:
            raise ValueError(f"{self.uri} is remote: use download_dir({rel!r})")
        return Path(self.path(rel))

    def exists(self, rel: str) -> bool:
        return self.fs.get_file_info(self.path(rel)).type != pafs.FileType.NotFound

    def list(self, rel: str) -> list[str]:
        """Names directly under `rel` (empty when it does not exist)."""
        info = self.fs.get_file_info(pafs.FileSelector(self.path(rel), allow_not_found=True))
        return sorted(i.base_name for i in info)

    def read_json(self, rel: str) -> Any:
        """Raises FileNotFoundError when absent and ValueError naming the file when malformed."""
        try:
            with self.fs.open_input_stream(self.path(rel)) as f:
                data = f.read()
        except FileNotFoundError:
            raise
        except OSError as e:
            if not self.exists(rel):
                raise FileNotFoundError(self.uri_of(rel)) from e
            raise
        try:
            return json.loads(data)
        except ValueError as e:
            raise ValueError(f"{self.uri_of(rel)}: not valid JSON: {e}") from e

    def write_json(self, rel: str, obj: Any) -> None:
        """Atomic, as `write_bytes`."""
        self.write_bytes(rel, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Atomic: readers see the old file or the new one, never half of one. Locally a temp
        file is renamed over the target; on object stores a single put is atomic already."""
        if self.is_local:
            target = self.local_path(rel)
            os.replace(_write_beside(target, data), target)
            return
        parent = self.path(rel).rsplit("/", 1)[0]
        self.fs.create_dir(parent, recursive=True)  # a no-op marker on object stores
        with self.fs.open_output_stream(self.path(rel)) as f:
            f.write(data)

    @property
    def atomic_claims(self) -> bool:
        """Whether create-if-absent and replace-if-unchanged are atomic here (local, S3)."""
        return self.is_local or self.scheme == "s3"

    def _bucket_key(self, rel: str) -> tuple[str, str]:
        bucket, _, key = self.path(rel).partition("/")
        return bucket, key

    def create_json_exclusive(self, rel: str, obj: Any) -> bool:
        """Write `rel` only if it does not exist; True when this call created it."""
        return self.create_json_tagged(rel, obj) is not None

    def create_json_tagged(self, rel: str, obj: Any) -> str | None:
        """Write `rel` only if it does not exist: its version tag ("" locally, the ETag on S3)
        when this call created it, None when it existed.

        Locally this is atomic: the full content goes to a temp file that is hard-linked to the
        target (link fails if the target exists, like O_EXCL, and no reader sees it empty). On
        S3 it is a conditional put (If-None-Match). Other object stores have no create-if-absent
        through pyarrow: check-then-put with a read-back, so two racers within ~the same second
        may both win (see Lease)."""
        data = (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()
        if self.scheme == "s3":
            return s3_conditional.put_if_absent(*self._bucket_key(rel), data)
        if self.is_local:
            target = self.local_path(rel)
            tmp = _write_beside(target, data)
            try:
                os.link(tmp, target)
                return ""
            except FileExistsError:
                return None
            finally:
                tmp.unlink(missing_ok=True)
        if self.exists(rel):
            return None
        self.write_json(rel, obj)
        time.sleep(0.5)  # let a concurrent put land, then see whose content won
        try:
            return "" if self.read_json(rel) == obj else None
        except FileNotFoundError:
            return None

    def read_json_tagged(self, rel: str) -> tuple[Any, str | None]:
        """`rel`'s content and its version tag (the ETag on S3, None elsewhere)."""
        if self.scheme != "s3":
            return self.read_json(rel), None

        data, etag = s3_conditional.get(*self._bucket_key(rel))
        try:
            return json.loads(data), etag
        except ValueError as e:
            raise ValueError(f"{self.uri_of(rel)}: not valid JSON: {e}") from e

    def replace_json_if(self, rel: str, obj: Any, tag: str) -> str | None:
        """S3 only: replace `rel` if it still has version `tag`; the new tag, or None when
        someone else wrote (or deleted) it since."""
        if self.scheme != "s3":
            raise NotImplementedError(f"{self.uri}: replace-if-unchanged needs S3")

        data = (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()
        return s3_conditional.put_if_match(*self._bucket_key(rel), data, tag)

    def delete(self, rel: str) -> None:
        """Remove a file; a missing one is fine (someone else cleaned up first)."""
        try:
            self.fs.delete_file(self.path(rel))
        except FileNotFoundError:
            pass

    def delete_dir(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.delete_dir(self.path(rel))

    def upload_dir(self, local: str | os.PathLike, rel: str) -> None:
        """Copy a local folder's files into `rel` (merged with what is there, files replaced)."""
        local = Path(local)
        if not local.is_dir():
            raise FileNotFoundError(f"no folder to upload at {local}")
        self.fs.create_dir(self.path(rel), recursive=True)
        pafs.copy_files(str(local.resolve()), self.path(rel),
                        source_filesystem=pafs.LocalFileSystem(), destination_filesystem=self.fs)

    def download_dir(self, rel: str, local: str | os.PathLike | None = None) -> Path:
        """A local folder holding `rel`'s files. Local storage: the folder itself, no copy.
        Remote: copied once into `local` (default: a cache keyed by the storage URI); a copy
        is only trusted once complete, so only use this for folders that no longer change."""
        if local is None and self.is_local:
            return self.local_path(rel)
        if not self.exists(rel):
            raise FileNotFoundError(f"{self.uri_of(rel)} does not exist")
        dest = Path(local) if local is not None else self.cache_dir() / rel
        if (dest / CACHE_MARK).exists():
            return dest
        tmp = dest.with_name(dest.name + f".part-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        pafs.copy_files(self.path(rel), str(tmp), source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())
        (tmp / CACHE_MARK).touch()
        shutil.rmtree(dest, ignore_errors=True)
        try:
            tmp.rename(dest)
        except OSError:  # another process finished the same copy first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        return dest

    def cache_dir(self) -> Path:
        """This node's cache of this storage (never shared between nodes)."""
        key = hashlib.sha256(self.uri.encode()).hexdigest()[:16]
        return node_cache_root() / "storage" / key


def _write_beside(target: Path, data: bytes) -> Path:
    """Write `data` to a temp file next to `target` (same filesystem, so a rename or link onto
    `target` is atomic) and return the temp file's path."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    tmp.write_bytes(data)
    return tmp


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Lease:
    """A lock file with an owner (host, pid, token) and a heartbeat time.

    The holder rewrites the time every `heartbeat_s` from a daemon thread. A lock whose time is
    older than its TTL, or whose owner is a dead pid on this host, is stale and may be taken
    over, so a crashed holder blocks others for at most one TTL. Takeover goes through a
    create-exclusive claim file named after the stale owner's token, so only one waiter takes
    over a given stale lock. Guarantees: on local (and NFS-like POSIX) storage acquisition and
    takeover are atomic; so are they on S3, where the claim is a conditional put and a takeover
    or a heartbeat replaces the record only if its ETag is unchanged (If-Match). A holder frozen
    for longer than the TTL can lose the lease, which its heartbeat notices (`lost`). On other
    object stores (gs://) creation is check-then-put, so two processes starting within the
    read-back window may both hold the lease: the work is then done twice, which wastes time but
    stays correct when results are written atomically (a manifest last).
    """

    def __init__(self, storage: Storage, rel: str, *, ttl_s: float = 120.0,
                 heartbeat_s: float | None = None):
        if ttl_s <= 0:
            raise ValueError("ttl_s must be > 0")
        self.storage, self.rel, self.ttl_s = storage, rel, float(ttl_s)
        self.heartbeat_s = heartbeat_s if heartbeat_s is not None else self.ttl_s / 4
        self.token = uuid.uuid4().hex
        self.held = False
        self.lost = False
        self._tag: str | None = None  # S3: the ETag of our last write of the record
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token,
                "time": time.time(), "ttl_s": self.ttl_s}

    def holder(self) -> dict | None:
        """The current lock record, None when unlocked; an unreadable one counts as fresh."""
        try:
            return self.storage.read_json(self.rel)
        except FileNotFoundError:
            return None
        except ValueError:
            return {"token": None, "time": time.time(), "ttl_s": self.ttl_s}

    def is_stale(self, record: dict, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        ttl = float(record.get("ttl_s") or self.ttl_s)
        if now - float(record.get("time", now)) > ttl:
            return True
        same_host = record.get("host") == socket.gethostname()
        return same_host and isinstance(record.get("pid"), int) and not pid_alive(record["pid"])

    def try_acquire(self) -> bool:
        """One attempt, never blocks: True when this process now holds the lease."""
        if self.held:
            return True
        self._tag = self.storage.create_json_tagged(self.rel, self.record())
        if self._tag is None:
            taken = (self._take_over_s3() if self.storage.scheme == "s3"
                     else self._take_over_if_stale())
            if not taken:
                return False
        self.held, self.lost = True, False
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"lease:{self.rel}")
        self._thread.start()
        return True

    def _take_over_if_stale(self) -> bool:
        current = self.holder()
        return current is not None and self.is_stale(current) and self._take_over(current)

    def _take_over_s3(self) -> bool:
        """Replace a stale record only if nobody rewrote it since we read it (If-Match)."""
        try:
            current, etag = self.storage.read_json_tagged(self.rel)
        except FileNotFoundError:
            return False  # released just now: the next attempt creates it
        except ValueError:
            return False  # half-written by hand? never on S3 (puts are whole): not ours
        if not self.is_stale(current):
            return False
        self._tag = self.storage.replace_json_if(self.rel, self.record(), etag)
        return self._tag is not None

    def _take_over(self, stale: dict) -> bool:
        claim = f"{self.rel}.takeover-{stale.get('token')}"
        if not self.storage.create_json_exclusive(claim, self.record()):
            self._clear_stale_claim(claim)
            return False
        try:
            current = self.holder()
            # Someone released, or took over before us and finished: not ours to replace.
            if current is None or current.get("token") != stale.get("token"):
                return False
            self.storage.write_json(self.rel, self.record())
            return True
        finally:
            self.storage.delete(claim)

    def _clear_stale_claim(self, claim: str) -> None:
        """A taker-over that crashed inside its claim would block the takeover forever."""
        try:
            record = self.storage.read_json(claim)
        except (FileNotFoundError, ValueError):
            return
        if self.is_stale(record):
            self.storage.delete(claim)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            if self.storage.scheme == "s3":
                self._tag = self.storage.replace_json_if(self.rel, self.record(), self._tag)
                if self._tag is None:
                    self.lost = True  # rewritten by a taker-over: no longer ours
                    return
                continue
            current = self.holder()
            if current is None or current.get("token") != self.token:
                self.lost = True  # taken over while we were frozen past the TTL
                return
            self.storage.write_json(self.rel, self.record())

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours."""
        if not self.held:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.heartbeat_s))
        current = self.holder()
        if current is not None and current.get("token") == self.token:
            self.storage.delete(self.rel)
        self.held = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.release()
