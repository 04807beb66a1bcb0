"""The two programs evals/sandbox.py runs inside its sandboxes (stdlib only; passed via `-c`).

`worker`: executes the untrusted program and answers calls of its entry point over a pipe with
plain data. `checker`: runs the benchmark's trusted `check(candidate)` (and HumanEval+'s
differential tests) against a proxy of the worker, and reports the verdict by its exit status.
    python -I -S -c "$(cat evals/sandbox_harness.py)" worker ENTRY_POINT   # in /work
"""

import copy
import json
import math
import os
import sys

VERDICT_PREFIX = "VERDICT: "
MAX_MESSAGE = 64 << 20  # bytes in one reply line; longer is a failure, not a memory blow-up
REL_TOL = 1e-07  # numpy.allclose's default rtol, as EvalPlus compares floats


# ---------------------------------------------------------------- plain-data codec


def encode(x):
    """Plain data -> JSON-able, exact types only (an int subclass with a lying __eq__ is refused)."""
    kind = type(x)
    if kind is int and x.bit_length() > 60:
        return {"i": format(x, "x")}  # hex: linear time, where decimal is quadratic in digits
    if x is None or kind in (bool, int, float, str):
        return x
    if kind is list:
        return [encode(v) for v in x]
    if kind is tuple:
        return {"t": [encode(v) for v in x]}
    if kind is dict:
        return {"d": [[encode(k), encode(v)] for k, v in x.items()]}
    if kind in (set, frozenset):
        return {"s" if kind is set else "f": [encode(v) for v in x]}
    if kind is bytes:
        return {"b": x.hex()}
    if kind is complex:
        return {"c": [x.real, x.imag]}
    raise TypeError(f"a {kind.__name__} cannot cross the sandbox (plain data only)")


def _tagged(obj):
    if len(obj) != 1:
        raise ValueError("malformed message: an object must hold exactly one tag")
    ((tag, value),) = obj.items()
    if tag == "i" and type(value) is str:
        return int(value, 16)
    if tag == "t" and type(value) is list:
        return tuple(value)
    if tag == "d" and type(value) is list:
        if not all(type(p) is list and len(p) == 2 for p in value):
            raise ValueError("malformed dict")
        return {k: v for k, v in value}
    if tag in ("s", "f") and type(value) is list:
        return set(value) if tag == "s" else frozenset(value)
    if tag == "b" and type(value) is str:
        return bytes.fromhex(value)
    if tag == "c" and type(value) is list and len(value) == 2:
        return complex(float(value[0]), float(value[1]))
    raise ValueError(f"malformed message: unknown tag {tag!r}")


def decode(line):
    return json.loads(line, object_hook=_tagged)


def _one_line(text, n=300):
    return " ".join(str(text).split())[:n]


# ---------------------------------------------------------------- worker (untrusted side)


def _protocol_fds():
    """Keep stdin/stdout for the protocol; the program's own prints go to /dev/null."""
    incoming = os.fdopen(os.dup(0), "rb")
    outgoing = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    return incoming, outgoing


def worker(entry_point):
    incoming, outgoing = _protocol_fds()

    def send(message):
        outgoing.write(json.dumps(message).encode() + b"\n")
        outgoing.flush()

    try:
        namespace = {"__name__": "__candidate__"}
        with open("program.py") as f:
            exec(compile(f.read(), "program.py", "exec"), namespace)  # noqa: S102 - sandboxed
        function = namespace[entry_point]
    except BaseException as exc:  # noqa: BLE001 - any failure of the program is its verdict
        send(["error", f"{type(exc).__name__}: {_one_line(exc)}"])
        return
    send(["ready"])
    for line in incoming:
        _, args, kwargs = decode(line)
        try:
            reply = ["ok", encode(function(*args, **kwargs))]
        except BaseException as exc:  # noqa: BLE001
            reply = ["raised", f"{type(exc).__name__}: {_one_line(exc)}"]
        send(reply)


# ---------------------------------------------------------------- checker (trusted side)


class CandidateError(Exception):
    """The candidate raised, returned something that is not plain data, or stopped answering."""


class Proxy:
    """Stands in for the candidate function: each call is a round trip to the worker."""

    def __init__(self, incoming, outgoing):
        self.incoming, self.outgoing = incoming, outgoing

    def receive(self):
        line = self.incoming.readline(MAX_MESSAGE)
        if not line.endswith(b"\n"):
            raise CandidateError("the program stopped answering" if not line else "reply too long")
        message = decode(line)
        if type(message) is not list or not message or type(message[0]) is not str:
            raise CandidateError("malformed reply")
        return message

    def ready(self):
        message = self.receive()
        if message != ["ready"]:
            raise CandidateError(f"program did not load: {_one_line(message[-1])}")

    def __call__(self, *args, **kwargs):
        self.send(args, kwargs)
        return self.result()

    def send(self, args, kwargs):
        request = ["call", encode(list(args)), encode(dict(kwargs))]
        self.outgoing.write(json.dumps(request).encode() + b"\n")
        self.outgoing.flush()

    def result(self):
        message = self.receive()
        if message[0] == "ok" and len(message) == 2:
            return message[1]
        raise CandidateError(f"candidate raised {_one_line(message[-1])}")


def _is_floats(x):
    if type(x) is float:
        return True
    return type(x) in (list, tuple) and len(x) > 0 and all(type(v) is float for v in x)


def _close(got, expected, atol):
    """numpy.allclose(got, expected, rtol=1e-7, atol) for scalars and (nested) sequences."""
    if type(expected) in (list, tuple):
        return (type(got) is type(expected) and len(got) == len(expected)
                and all(_close(g, e, atol) for g, e in zip(got, expected)))
    try:
        return abs(got - expected) <= atol + REL_TOL * abs(expected)
    except TypeError:
        return False


def outputs_match(entry_point, args, got, expected, atol):
    """EvalPlus's comparison: exact, or allclose for floats; find_zero checks the root itself."""
    if entry_point == "find_zero":  # HumanEval/32: any root is right (EvalPlus's special oracle)
        try:
            value = sum(c * math.pow(got, i) for i, c in enumerate(args[0]))
        except (TypeError, ValueError, OverflowError):
            return False
        return abs(value) <= atol
    if got == expected:
        return True
    if atol == 0 and _is_floats(expected):
        atol = 1e-6
    if atol == 0:
        return False
    return type(got) is type(expected) and _close(got, expected, atol)


def _run_plus(plus, entry_point, candidate):
    namespace = {"__name__": "__reference__"}
    exec(compile(plus["reference"], "reference", "exec"), namespace)  # noqa: S102
    reference = namespace[entry_point]
    for i, args in enumerate(plus["inputs"]):
        candidate.send(args, {})  # the worker computes while the reference does
        expected = reference(*copy.deepcopy(args))
        got = candidate.result()
        if not outputs_match(entry_point, args, got, expected, plus["atol"]):
            raise AssertionError(f"HumanEval+ input {i}: wrong output")


def checker():
    incoming, outgoing = _protocol_fds()
    with open("task.json") as f:
        task = json.load(f)
    try:
        candidate = Proxy(incoming, outgoing)
        candidate.ready()
        namespace = {"__name__": "__check__"}
        exec(compile(task["prompt"], "prompt", "exec"), namespace)  # noqa: S102 - test helpers
        namespace[task["entry_point"]] = candidate  # some tests call the function by its name
        exec(compile(task["test"], "test", "exec"), namespace)  # noqa: S102
        namespace["check"](candidate)
        if task["plus"] is not None:
            _run_plus(task["plus"], task["entry_point"], candidate)
    except BaseException as exc:  # noqa: BLE001 - every way out but the normal one is a failure
        sys.stderr.write(f"\n{VERDICT_PREFIX}failed: {type(exc).__name__}: {_one_line(exc)}\n")
        sys.stderr.flush()
        os._exit(1)
    sys.stderr.write(f"\n{VERDICT_PREFIX}passed\n")
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.set_int_max_str_digits(0)  # HumanEval+ has very large integers
    if sys.argv[1:2] == ["worker"]:
        worker(sys.argv[2])
    elif sys.argv[1:2] == ["checker"]:
        checker()
    else:
        raise SystemExit("usage: -c HARNESS worker ENTRY_POINT | checker")
