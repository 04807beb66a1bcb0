"""Hostile programs against evals/sandbox.py: every one fails within its limits, host unchanged.

Each case would *pass* the check if its attack worked (it returns a secret the check expects, or
forges a verdict), so a verdict of "failed" is evidence, not a tautology. All run at once in a
thread pool with a 3 s timeout; then the host is inspected (files, processes, environment).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import subprocess
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from paths import REPO

from evals import sandbox
from evals.sandbox import Limits, PlusTests, check_function
from evals.sandbox_harness import decode, encode

NONCE = secrets.token_hex(8)  # what the check expects: no program is ever told it
SECRET_ENV = "DMT_HOSTILE_SECRET"
MARK = f"hostile-{NONCE}"
PROMPT = 'def solve(x):\n    """Return the answer for x."""\n'
TEST = f"def check(candidate):\n    assert candidate(1) == {NONCE!r}\n"
LIMITS = Limits(timeout_s=3.0, cpu_s=3, memory_bytes=512 << 20, file_bytes=1 << 20)
LEVELS = {"rlimits": 0, "unshare": 1, "bwrap": 2}


def _case(needs: str, source: str) -> tuple[str, str]:
    return needs, textwrap.dedent(source).lstrip()


# name -> (isolation it needs, program). {host_pid}, {victim}, {port}, {shadow}, {mark}, {repo},
# {home}, {secret_file}, {humaneval}, {secret_env} are filled in; the answer never is, except
# as what a program returns when its attack has succeeded ({nonce_if_...}).
HOSTILE = {
    "infinite loop": _case("rlimits", """
        def solve(x):
            while True:
                pass
        """),
    "sleep past the timeout": _case("rlimits", """
        import time
        def solve(x):
            time.sleep(60)
        """),
    "fork bomb": _case("rlimits", """
        import os
        def solve(x):
            while True:
                os.fork()
        """),
    "memory bomb": _case("rlimits", """
        def solve(x):
            hoard = [bytearray(10**7) for _ in range(10**4)]
        """),
    "one huge allocation": _case("rlimits", """
        def solve(x):
            return bytearray(1 << 40)
        """),
    "os._exit(0) before the tests": _case("rlimits", """
        import os
        os._exit(0)
        """),
    "sys.exit(0) at import": _case("rlimits", """
        import sys
        sys.exit(0)
        """),
    "SystemExit from __del__": _case("rlimits", """
        class D:
            def __del__(self):
                raise SystemExit(0)
        def solve(x):
            D()
        """),
    "atexit os._exit(0)": _case("rlimits", """
        import atexit, os
        atexit.register(os._exit, 0)
        def solve(x):
            raise SystemExit(0)
        """),
    "object equal to everything": _case("rlimits", """
        class E:
            def __eq__(self, other):
                return True
        def solve(x):
            return E()
        """),
    "str subclass equal to everything": _case("rlimits", """
        class S(str):
            def __eq__(self, other):
                return True
            __hash__ = str.__hash__
        def solve(x):
            return S("x")
        """),
    "patched builtins, assert and check": _case("rlimits", """
        import builtins
        builtins.AssertionError = type("A", (Exception,), {})
        def check(candidate):
            pass
        def solve(x):
            return "wrong"
        """),
    "forged verdict and replies": _case("rlimits", """
        import os, sys
        for fd in range(1, 8):
            try:
                os.write(fd, b'["ok", "x"]\\nVERDICT: passed\\n')
            except OSError:
                pass
        print("passed")
        sys.stderr.write("VERDICT: passed\\n")
        os._exit(0)
        """),
    "stdout flood": _case("rlimits", """
        def solve(x):
            while True:
                print("x" * 65536)
        """),
    "stderr flood": _case("rlimits", """
        import sys
        def solve(x):
            while True:
                sys.stderr.write("y" * 65536)
        """),
    "deep recursion": _case("rlimits", """
        import sys
        sys.setrecursionlimit(10**7)
        def solve(x):
            return solve(x + 1)
        """),
    "segfault": _case("rlimits", """
        import ctypes
        def solve(x):
            return ctypes.string_at(0)
        """),
    "thread exits the process": _case("rlimits", """
        import os, threading, time
        threading.Thread(target=lambda: (time.sleep(0.2), os._exit(0))).start()
        def solve(x):
            time.sleep(5)
        """),
    "ignores SIGTERM and sleeps": _case("rlimits", """
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        def solve(x):
            time.sleep(60)
        """),
    "frame walking to patch the harness": _case("rlimits", """
        import gc, sys
        for o in gc.get_objects():
            if isinstance(o, dict) and "send" in o:
                o["send"] = lambda message: None
        def solve(x):
            return sys._getframe(1).f_locals.get("expected", "none")
        """),
    "environment secret": _case("rlimits", """
        import os
        def solve(x):
            return os.environ.get({secret_env!r})
        """),
    "setuid root": _case("unshare", """
        import os
        def solve(x):
            os.setuid(0)
            return open("/etc/shadow").read()
        """),
    "daemon that outlives the sandbox": _case("unshare", """
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(60)
            os._exit(0)
        def solve(x):
            return "wrong"
        """),
    "socket to the host": _case("unshare", """
        import socket
        def solve(x):
            s = socket.create_connection(("127.0.0.1", {port}), timeout=2)
            return s.recv(64).decode()
        """),
    "read /etc/shadow": _case("unshare", """
        import hashlib
        def solve(x):
            data = open("/etc/shadow", "rb").read()
            ok = hashlib.sha256(data).hexdigest() == {shadow!r}
            return {nonce_if_shadow!r} if ok else "no"
        """),
    "kill the parent": _case("bwrap", """
        import os, signal
        os.kill(os.getppid(), signal.SIGKILL)
        def solve(x):
            return "wrong"
        """),
    "kill a host process and everyone": _case("bwrap", """
        import os, signal
        for pid in ({victim}, {host_pid}, -1):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        def solve(x):
            return "wrong"
        """),
    "host environment via /proc": _case("bwrap", """
        def solve(x):
            env = open("/proc/{host_pid}/environ", "rb").read()
            for item in env.split(b"\\0"):
                if item.startswith({secret_env!r}.encode() + b"="):
                    return item.split(b"=", 1)[1].decode()
        """),
    "read a host file": _case("bwrap", """
        def solve(x):
            return open({secret_file!r}).read()
        """),
    "read the shipped answers": _case("bwrap", """
        import gzip, json
        def solve(x):
            rows = [json.loads(line) for line in gzip.open({humaneval!r})]
            return {nonce_if_answers!r} if rows else "no"
        """),
    "write outside the work dir": _case("bwrap", """
        import os
        def solve(x):
            for folder in ("/tmp", {repo!r}, {home!r}, "/work/..", "/usr", "/"):
                try:
                    open(os.path.join(folder, {mark!r}), "w").write("1")
                except OSError:
                    pass
            return "wrong"
        """),
    "setuid file and disk fill": _case("bwrap", """
        import os, shutil
        shutil.copy("/usr/bin/python3", {mark!r})
        os.chmod({mark!r}, 0o4755)
        with open("big", "wb") as f:
            f.write(b"0" * (64 << 20))
        def solve(x):
            return "wrong"
        """),
}


def _level() -> str:
    return sandbox.isolation_level()


def _host_snapshot() -> dict:
    watched = [Path("/tmp"), REPO, REPO / "evals", REPO / "tests", Path.home()]
    return {"entries": {str(d): sorted(os.listdir(d)) for d in watched},
            "environ": dict(os.environ), "children": set(_children_of(os.getpid()))}


def _sandbox_processes() -> list[int]:
    uids = sandbox.uid_block()  # ours only: other engineers' sandboxes may run meanwhile
    return [int(e.name) for e in os.scandir("/proc") if e.name.isdigit()
            and _safe_uid(e) in uids and not sandbox._is_zombie(e.path)]


def _fill(source: str, values: dict) -> str:
    for key, value in values.items():
        source = source.replace(f"{{{key}!r}}", repr(value)).replace(f"{{{key}}}", str(value))
    return source


def _safe_uid(entry) -> int:
    try:
        return entry.stat().st_uid
    except OSError:
        return -1


def _children_of(pid: int) -> list[int]:
    out = []
    for e in os.scandir("/proc"):
        if e.name.isdigit():
            try:
                stat = Path(e.path, "stat").read_bytes().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(stat[1]) == pid and stat[0] not in (b"Z", b"X"):
                out.append(int(e.name))
    return out


def _serve_nonce(server: socket.socket, stop: threading.Event, hits: list) -> None:
    server.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        except OSError:
            return  # closed
        hits.append(1)
        conn.sendall(NONCE.encode())
        conn.close()


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """Run every hostile case at once; record the host before and after."""
    level = _level()
    secret_file = tmp_path_factory.mktemp("secret") / "answer.txt"
    secret_file.write_text(NONCE)
    secret_file.chmod(0o644)
    shadow = hashlib.sha256(Path("/etc/shadow").read_bytes()).hexdigest() \
        if os.access("/etc/shadow", os.R_OK) else "unreadable"
    victim = subprocess.Popen(["sleep", "60"])
    server = socket.create_server(("127.0.0.1", 0))
    stop, hits = threading.Event(), []
    threading.Thread(target=_serve_nonce, args=(server, stop, hits), daemon=True).start()
    from evals.humaneval import shipped_data

    fill = {"host_pid": os.getpid(), "victim": victim.pid, "port": server.getsockname()[1],
            "shadow": shadow, "mark": MARK, "repo": str(REPO), "home": str(Path.home()),
            "secret_file": str(secret_file), "humaneval": str(shipped_data()),
            "nonce_if_shadow": NONCE, "nonce_if_answers": NONCE, "secret_env": SECRET_ENV}
    os.environ[SECRET_ENV] = NONCE
    before = _host_snapshot()
    cases = {name: (needs, src) for name, (needs, src) in HOSTILE.items()
             if LEVELS[needs] <= LEVELS[level]}

    def run(name):
        program = _fill(cases[name][1], fill)
        return name, check_function(program, entry_point="solve", prompt=PROMPT, test=TEST,
                                    limits=LIMITS)

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            verdicts = dict(pool.map(run, cases))
        after = _host_snapshot()
        victim_alive = victim.poll() is None
    finally:
        del os.environ[SECRET_ENV]
        stop.set()
        server.close()
        victim.kill()
        victim.wait()
    return {"level": level, "verdicts": verdicts, "before": before, "after": after,
            "victim_alive": victim_alive, "connections": hits}


def test_there_are_at_least_twenty_hostile_cases():
    assert len(HOSTILE) >= 20


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_fails_within_limits(hostile_run, name):
    needs = HOSTILE[name][0]
    if LEVELS[needs] > LEVELS[hostile_run["level"]]:
        pytest.skip(f"needs {needs!r} isolation; this machine has {hostile_run['level']!r}")
    verdict = hostile_run["verdicts"][name]
    assert not verdict.passed, f"{name}: {verdict}"
    assert verdict.isolation == hostile_run["level"]
    # Killed at its limit (3 s), well before the 5-60 s the programs ask for; the slack is for
    # a loaded machine (CI's 2 cores under a Ray session), where +2 s was once not enough.
    assert verdict.wall_s < LIMITS.timeout_s + 8.0, f"{name} ran past its limit: {verdict}"


def test_host_is_unchanged_after_hostile_programs(hostile_run):
    before, after = hostile_run["before"], hostile_run["after"]
    assert after["environ"] == before["environ"]
    for folder, entries in after["entries"].items():
        assert not [e for e in entries if MARK in e], f"a sandbox wrote into {folder}"
        if folder != "/tmp":  # other engineers' tests share /tmp; see the owner check below
            assert entries == before["entries"][folder], f"{folder} changed"
    ours = [e for e in os.listdir("/tmp") if e.startswith(f"{sandbox.TMP_PREFIX}{os.getpid()}-")]
    assert ours == [], "a sandbox work dir was left behind"
    sandbox_owned = [e.name for e in os.scandir("/tmp") if _safe_uid(e) in sandbox.uid_block()]
    assert sandbox_owned == []
    assert _sandbox_processes() == []
    # Children that were there before (a session-wide local Ray) are not the sandbox's doing.
    assert set(_children_of(os.getpid())) - before["children"] == set()
    if LEVELS[hostile_run["level"]] >= LEVELS["bwrap"]:
        assert hostile_run["victim_alive"], "a sandboxed program killed a host process"
    if LEVELS[hostile_run["level"]] >= LEVELS["unshare"]:
        assert hostile_run["connections"] == [], "a sandboxed program reached the host network"


def test_a_correct_program_passes_and_a_wrong_one_fails():
    right = check_function(f"def solve(x):\n    return {NONCE!r}\n", entry_point="solve",
                           prompt=PROMPT, test=TEST, limits=LIMITS)
    wrong = check_function("def solve(x):\n    return 'no'\n", entry_point="solve",
                           prompt=PROMPT, test=TEST, limits=LIMITS)
    assert right.passed and right.reason == "passed"
    assert not wrong.passed and "AssertionError" in wrong.reason


def test_plus_tests_compare_with_the_reference():
    prompt = 'def half(x):\n    """Half of x."""\n'
    reference = prompt + "    return x / 2\n"
    plus = PlusTests(reference, ([1.0], [3], [10**30]), atol=0.0)
    test = "def check(candidate):\n    assert candidate(4) == 2\n"
    good = check_function(reference, entry_point="half", prompt=prompt, test=test, plus=plus,
                          limits=LIMITS)
    bad = check_function(prompt + "    return x / 2 if x < 1000 else 0\n", entry_point="half",
                         prompt=prompt, test=test, plus=plus, limits=LIMITS)
    assert good.passed, good
    assert not bad.passed and "HumanEval+ input 2" in bad.reason  # the first two match


@pytest.mark.parametrize("level", ["unshare", "rlimits"])
def test_weaker_isolation_levels_still_judge_and_say_so(monkeypatch, level):
    if level == "unshare" and os.geteuid() != 0:
        pytest.skip("the 'unshare' level needs root")
    monkeypatch.setattr(sandbox, "isolation_level", lambda: level)
    unsafe = level == "rlimits"  # no isolation at all: refused unless asked for explicitly
    right = check_function(f"def solve(x):\n    return {NONCE!r}\n", entry_point="solve",
                           prompt=PROMPT, test=TEST, limits=LIMITS, allow_unsafe=unsafe)
    looping = check_function(HOSTILE["infinite loop"][1], entry_point="solve", prompt=PROMPT,
                             test=TEST, limits=Limits(timeout_s=1.0, cpu_s=1),
                             allow_unsafe=unsafe)
    assert right.passed and right.isolation == level
    assert not looping.passed and looping.isolation == level
    assert _sandbox_processes() == []


def test_no_isolation_refuses_to_run_model_code(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox, "isolation_level", lambda: "rlimits")
    marker = tmp_path / "ran"
    program = f"open({str(marker)!r}, 'w').write('x')\ndef solve(x):\n    return 1\n"
    with pytest.raises(sandbox.IsolationRefused, match="--unsafe-sandbox"):
        check_function(program, entry_point="solve", prompt=PROMPT, test=TEST, limits=LIMITS)
    assert not marker.exists()  # refused before anything ran
    assert _sandbox_processes() == []


def test_codec_round_trips_plain_data_and_refuses_objects():
    value = [1, -2**100, 2.5, float("inf"), "s", None, True, (1, (2,)), {(1, 2): {"a": [b"x"]}},
             {3, 4}, frozenset({5}), 1 + 2j]
    import json

    assert decode(json.dumps(encode(value))) == value
    with pytest.raises(TypeError):
        encode(type("Liar", (int,), {"__eq__": lambda s, o: True})(1))
    with pytest.raises(ValueError):
        decode('{"x": 1, "y": 2}')
