"""The sandbox that runs model-written code: a verdict the untrusted program cannot forge.

Design. Untrusted code and the test never share a process. A *worker* process runs the candidate
program and answers calls `entry_point(*args)` over a pipe with plain data (JSON of None, bool,
int, float, str, list, tuple, dict, set, bytes, complex: nothing with methods). A separate *checker*
process (never runs untrusted code) executes the benchmark's own `check(candidate)` with
`candidate` a proxy that sends the arguments to the worker and decodes the reply. The verdict is
the checker's exit status, read by the parent. Anything the worker does (os._exit, sys.exit,
printing "passed", patching builtins/assert/check, walking frames, reading memory with ctypes,
returning an object whose __eq__ is always True) only changes the data it sends back, or ends the
conversation, and both are failures. That is why there is no nonce: an in-process nonce can be read
by code in the same interpreter (gc, frames, /proc/self/mem), so the check must live elsewhere.

Isolation of each process (both of them, the checker for hygiene), strongest available, recorded
in every verdict as `isolation`:
- "bwrap": bubblewrap with only /usr (and the interpreter's prefix) mounted read-only, site- and
  dist-packages hidden (so benchmark answers shipped in packages cannot be read), a private /tmp,
  an empty writable /work, new pid/net/ipc/uts/user namespaces, --clearenv, --die-with-parent,
  run as a fresh unprivileged uid per process (so RLIMIT_NPROC counts that sandbox alone, files
  it writes are not root's, and every leftover process can be found and killed by uid).
- "unshare": no bwrap, but root: a private network namespace and a fresh uid; the whole file
  system stays readable to that uid (world-readable answers included).
- "rlimits": neither: only rlimits, a process group and a clean environment. Model code is
  REFUSED at this level (`IsolationRefused`) unless the caller passes `allow_unsafe=True`
  (`--unsafe-sandbox` on evals.run, evals.score and the sweep commands); then loudly warned.
Every process gets RLIMIT_CPU/AS/FSIZE/NPROC/CORE, its own session, a wall-clock timeout, and is
killed whole (process group, namespace, and all processes of its uid) when done or late.
Limits: memory is capped per process (RLIMIT_AS x RLIMIT_NPROC in total, no cgroup); the checker
trusts the benchmark's test code (it runs sandboxed, but its verdict is believed).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from evals import sandbox_harness

log = logging.getLogger(__name__)
HARNESS = Path(sandbox_harness.__file__).read_text()

SANDBOX_UID_BASE = 1_000_000  # far above real users; one block of uids per host process
UIDS_PER_PROCESS = 1_000_000
TMP_PREFIX = "dmt-sandbox-"


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 5.0  # wall clock for the whole check (both processes)
    cpu_s: int = 6  # RLIMIT_CPU per process
    memory_bytes: int = 1 << 30  # RLIMIT_AS per process
    file_bytes: int = 8 << 20  # RLIMIT_FSIZE: largest file a process may write
    processes: int = 8  # RLIMIT_NPROC (threads count) per sandbox uid
    log_bytes: int = 4096  # stderr kept for the verdict's `detail`


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str  # "passed", "failed: ...", "timed out", "worker: ..."
    isolation: str
    wall_s: float
    detail: str = ""  # the worker's stderr tail, for reading why a program failed

    def to_dict(self) -> dict:
        return {"passed": self.passed, "reason": self.reason, "isolation": self.isolation,
                "wall_s": round(self.wall_s, 3), "detail": self.detail}


@dataclass(frozen=True)
class PlusTests:
    """HumanEval+ differential tests: inputs whose expected outputs come from the reference."""

    reference: str  # prompt + canonical solution: the trusted implementation
    inputs: tuple  # argument lists (JSON data)
    atol: float = 0.0


# ---------------------------------------------------------------- what is available here


def _reachable_by_others(path: str) -> bool:
    """True when an unprivileged uid can execute `path` (every parent directory o+x)."""
    p = Path(path).resolve()
    if not p.is_file() or not os.stat(p).st_mode & 0o001:
        return False
    return all(os.stat(d).st_mode & 0o001 for d in p.parents)


@lru_cache(maxsize=1)
def sandbox_python() -> str:
    """An interpreter of our Python version that a fresh uid can run (pyenv's may sit in /root)."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [os.path.realpath(getattr(sys, "_base_executable", sys.executable)),
                  f"/usr/bin/{version}", f"/usr/local/bin/{version}", "/usr/bin/python3"]
    for candidate in candidates:
        if _reachable_by_others(candidate):
            return str(Path(candidate).resolve())
    return str(Path(candidates[0]))


def _bwrap_mounts(python: str) -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    prefix = str(Path(python).parent.parent)
    if not prefix.startswith("/usr"):
        args += ["--ro-bind", prefix, prefix]
    # hide installed packages: HumanEval's answers ship inside pip packages
    hidden = {str(p) for root in {"/usr/lib", "/usr/local/lib", prefix + "/lib"}
              for p in Path(root).glob("python3*/*-packages") if p.is_dir()}
    for path in sorted(hidden):
        args += ["--tmpfs", path]
    return args + ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]


def _bwrap_command(python: str, workdir: str) -> list[str]:
    return ["bwrap", *_bwrap_mounts(python), "--bind", workdir, "/work", "--unshare-all",
            "--die-with-parent", "--new-session", "--clearenv", "--setenv", "PATH",
            "/usr/bin:/bin", "--setenv", "HOME", "/work", "--uid", "65534", "--gid", "65534",
            "--chdir", "/work", python]  # the last item is replaced by the full python argv


@lru_cache(maxsize=1)
def isolation_level() -> str:
    """'bwrap', 'unshare' or 'rlimits' (see the module docstring); warns unless 'bwrap'."""
    level = "rlimits"
    python = sandbox_python()
    if shutil.which("bwrap") and _probe(level="bwrap", python=python):
        level = "bwrap"
    elif os.geteuid() == 0 and shutil.which("unshare") and _probe("unshare", python):
        level = "unshare"
    if level != "bwrap":
        message = (f"sandbox isolation is only {level!r}: install bubblewrap (apt-get install "
                   "bubblewrap) for file-system, pid and network isolation")
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        log.warning(message)
    return level


class IsolationRefused(RuntimeError):
    """Neither bubblewrap nor namespaces here: model code is not run without an explicit flag."""


def require_isolation(allow_unsafe: bool = False) -> str:
    """The isolation level, or IsolationRefused where it is only 'rlimits' and unsafe runs were
    not asked for: model-written code would see the file system, the network and our uid."""
    level = isolation_level()
    if level == "rlimits" and not allow_unsafe:
        raise IsolationRefused(
            "refusing to run model-written code without isolation (no bubblewrap, no "
            "namespaces): install bubblewrap (apt-get install bubblewrap), or pass "
            "--unsafe-sandbox to run it under rlimits only (recorded in the results)")
    return level


def _probe(level: str, python: str) -> bool:
    try:
        with _Workspace() as space:
            uid = space.uid()
            proc = _spawn(level, python, ["-c", "print(6 * 7)"], space.dir(uid), uid,
                          Limits(), stdout=subprocess.PIPE)
            out, _ = proc.communicate(timeout=20)
            return proc.returncode == 0 and out.strip() == b"42"
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("sandbox probe %s failed: %s", level, exc)
        return False


# ---------------------------------------------------------------- processes


def uid_block() -> range:
    """The uids this host process gives its sandboxes (for tests and for cleaning up)."""
    base = SANDBOX_UID_BASE + (os.getpid() % 1000) * UIDS_PER_PROCESS
    return range(base, base + UIDS_PER_PROCESS)


class _UidPool:
    """Fresh uids, one per sandboxed process, so each has its own NPROC count and kill handle.

    Never reused soon: a dead sandbox's zombies still count against RLIMIT_NPROC until the
    container's init reaps them, so a recycled uid could find its process budget spent.
    """

    def __init__(self):
        self._base = uid_block().start
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            self._next += 1
            return self._base + self._next % UIDS_PER_PROCESS


_UIDS = _UidPool()


class _Workspace:
    """A temporary folder with one empty subfolder per process, removed with everything in it."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{os.getpid()}-"))
        self.root.chmod(0o711)  # sandbox uids may pass through to their own folder, not list
        self.uids: list[int] = []

    def __enter__(self):
        return self

    def uid(self) -> int | None:
        if os.geteuid() != 0:
            return None  # unprivileged: processes keep our uid
        uid = _UIDS.take()
        self.uids.append(uid)
        return uid

    def dir(self, uid: int | None, name: str = "") -> str:
        path = self.root / (name or f"p{len(list(self.root.iterdir()))}")
        path.mkdir(mode=0o700)
        if uid is not None:
            os.chown(path, uid, uid)
        return str(path)

    def __exit__(self, *exc):
        if self.uids:
            kill_uids(set(self.uids))
        shutil.rmtree(self.root, ignore_errors=True)


def _processes_of(uids: set[int]) -> list[int]:
    """Live pids whose owner is in `uids` (/proc/PID is owned by the process's euid)."""
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid in uids and not _is_zombie(entry.path):
                    pids.append(int(entry.name))
            except OSError:
                continue  # the process ended while we looked
    return pids


def _is_zombie(proc_path: str) -> bool:
    """Zombies are dead, only not yet reaped by the container's init: nothing left to kill."""
    try:
        with open(proc_path + "/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return True


def kill_uids(uids: set[int]) -> None:
    """SIGKILL every process of these uids until none is left (a fork loop can race one pass)."""
    for _ in range(100):
        pids = _processes_of(uids)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.005)
    log.error("processes of sandbox uids %s survived 100 rounds of SIGKILL", sorted(uids))


def _rlimits(limits: Limits, nproc: int) -> list[str]:
    """prlimit(1) as a command prefix: no preexec_fn, which is unsafe in a threaded parent."""
    return ["prlimit", f"--cpu={limits.cpu_s}", f"--as={limits.memory_bytes}",
            f"--fsize={limits.file_bytes}", "--core=0", f"--nproc={nproc}", "--"]


def _spawn(level, python, argv, workdir, uid, limits, stdin=None, stdout=None, stderr=None):
    if uid is None:  # unprivileged: NPROC counts all our processes, so leave room for them
        nproc = len(_processes_of({os.getuid()})) + limits.processes + 4
    else:
        nproc = limits.processes + (2 if level == "bwrap" else 0)  # bwrap's own two
    python_argv = [python, "-I", "-S", *argv]
    as_uid: dict = {}
    if level == "bwrap":
        command, cwd = _rlimits(limits, nproc) + _bwrap_command(python, workdir)[:-1], "/"
        as_uid = {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}
    elif level == "unshare":  # the network namespace needs root, so drop to the uid after it
        drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        command, cwd = ["unshare", "--net", "--", *drop, *_rlimits(limits, nproc)], workdir
    else:
        command, cwd = _rlimits(limits, nproc), workdir
        as_uid = {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}
    return subprocess.Popen(
        command + python_argv, cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "HOME": workdir, "LC_ALL": "C.UTF-8"},
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        stdout=stdout if stdout is not None else subprocess.DEVNULL,
        stderr=stderr if stderr is not None else subprocess.DEVNULL,
        start_new_session=True, close_fds=True, **as_uid)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


# ---------------------------------------------------------------- the check


def check_function(program: str, *, entry_point: str, prompt: str, test: str,
                   plus: PlusTests | None = None, limits: Limits = Limits(),
                   allow_unsafe: bool = False) -> Verdict:
    """Run `program` (untrusted) in a worker and the benchmark's `check` in a checker; see top.
    Raises IsolationRefused where only rlimits isolate it, unless `allow_unsafe`."""
    level = require_isolation(allow_unsafe)
    python = sandbox_python()
    started = time.monotonic()
    with _Workspace() as space:
        worker_uid, checker_uid = space.uid(), space.uid()
        worker_dir = space.dir(worker_uid, "worker")
        checker_dir = space.dir(checker_uid, "checker")
        Path(worker_dir, "program.py").write_text(program)
        task = {"entry_point": entry_point, "prompt": prompt, "test": test,
                "plus": None if plus is None else {"reference": plus.reference,
                                                   "inputs": list(plus.inputs),
                                                   "atol": plus.atol}}
        Path(checker_dir, "task.json").write_text(json.dumps(task))
        for path in (Path(worker_dir, "program.py"), Path(checker_dir, "task.json")):
            os.chmod(path, 0o444)
        to_worker_r, to_worker_w = os.pipe()
        to_checker_r, to_checker_w = os.pipe()
        with open(Path(space.root, "worker.err"), "wb") as worker_err, \
                open(Path(space.root, "checker.err"), "wb") as checker_err:
            worker = _spawn(level, python, ["-c", HARNESS, "worker", entry_point],
                            worker_dir, worker_uid, limits, stdin=to_worker_r,
                            stdout=to_checker_w, stderr=worker_err)
            checker = _spawn(level, python, ["-c", HARNESS, "checker"], checker_dir,
                             checker_uid, limits, stdin=to_checker_r, stdout=to_worker_w,
                             stderr=checker_err)
        for fd in (to_worker_r, to_worker_w, to_checker_r, to_checker_w):
            os.close(fd)
        late = threading.Event()
        # a timer rather than wait(timeout): Popen.wait(timeout) polls with sleeps up to 50 ms
        timer = threading.Timer(limits.timeout_s, lambda: (late.set(), _kill_group(checker)))
        timer.start()
        checker.wait()
        timer.cancel()
        timed_out = late.is_set()
        _kill_group(worker)
        _kill_group(checker)
        wall = time.monotonic() - started
        detail = _tail(Path(space.root, "worker.err"), limits.log_bytes)
        if timed_out:
            return Verdict(False, "timed out", level, wall, detail)
        reason = _checker_reason(Path(space.root, "checker.err"), checker.returncode)
        passed = checker.returncode == 0 and reason == "passed"
        return Verdict(passed, reason, level, wall, detail)


def _tail(path: Path, n: int) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - n))
        return f.read().decode("utf-8", "replace")


def _checker_reason(path: Path, returncode: int) -> str:
    """The checker's last stderr line is its verdict (the checker runs only trusted code)."""
    lines = _tail(path, 4096).strip().splitlines()
    last = lines[-1] if lines else ""
    if last.startswith(sandbox_harness.VERDICT_PREFIX):
        return last[len(sandbox_harness.VERDICT_PREFIX):]
    return f"checker exited {returncode}: {last[-300:]}"
