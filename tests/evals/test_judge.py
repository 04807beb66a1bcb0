"""The judge client against a real loopback HTTP server: retries, errors, concurrency, the cache,
and crashes (a raising hook, and a SIGKILLed process) that lose no judgment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from paths import ASSETS, REPO, TESTS

sys.path.insert(0, str(ASSETS))
HERE = Path(__file__).resolve().parent  # the child process imports this module from here
from mtb_judge_server import JudgeServer, rating_for

from evals.judge import (
    JudgeClient,
    JudgeConfig,
    JudgeError,
    JudgeRequest,
    JudgmentCache,
    cache_key,
)


def config(url: str, **kw) -> JudgeConfig:
    base = {"url": url, "model": "judge-model", "max_concurrency": 4, "max_retries": 6,
            "timeout_s": 0.5, "repeats": 1, "backoff_base_s": 0.01, "backoff_max_s": 0.05}
    return JudgeConfig(**{**base, **kw})


def make_requests(n: int) -> list[JudgeRequest]:
    return [JudgeRequest(cache_key(i, 1, "h", "judge-model", "v", 0),
                         ({"role": "system", "content": "sys"},
                          {"role": "user", "content": f"question {i}"})) for i in range(n)]


def expected_text(request: JudgeRequest) -> str:
    return f"Fine answer. Rating: [[{rating_for(list(request.messages))}]]"


def test_retries_429_500_timeout_malformed_then_answers(tmp_path):
    faults = ["429", "500", "slow", "malformed", "empty"]
    with JudgeServer(faults, slow_s=1.5) as server:
        client = JudgeClient(config(server.url), JudgmentCache(tmp_path / "c.jsonl"))
        [reply] = client.judge(make_requests(1))
    assert reply.error is None and reply.text == expected_text(make_requests(1)[0])
    assert len(server.requests) == len(faults) + 1
    sent = server.requests[0]
    assert sent["model"] == "judge-model" and sent["temperature"] == 0
    assert sent["max_tokens"] == 2048 and sent["n"] == 1


def test_client_error_is_not_retried(tmp_path):
    with JudgeServer(["400"]) as server:
        client = JudgeClient(config(server.url), JudgmentCache(tmp_path / "c.jsonl"))
        with pytest.raises(JudgeError, match="400"):
            client.judge(make_requests(1))
    assert len(server.requests) == 1


def test_gives_up_after_max_retries_and_caches_nothing(tmp_path):
    with JudgeServer(["500"] * 10) as server:
        cache = JudgmentCache(tmp_path / "c.jsonl")
        [reply] = JudgeClient(config(server.url, max_retries=3), cache).judge(make_requests(1))
    assert reply.text is None and "InternalServerError" in reply.error
    assert len(server.requests) == 4 and len(cache) == 0


def test_malformed_replies_stop_at_their_own_limit(tmp_path):
    with JudgeServer(["malformed", "empty", "malformed", "empty"]) as server:
        client = JudgeClient(config(server.url, max_malformed=2), JudgmentCache(tmp_path / "c"))
        [reply] = client.judge(make_requests(1))
    assert reply.text is None and "malformed" in reply.error
    assert len(server.requests) == 3


def test_concurrency_is_bounded_and_cache_is_read_first(tmp_path):
    requests = make_requests(12)
    with JudgeServer(delay_s=0.05) as server:
        cache = JudgmentCache(tmp_path / "c.jsonl")
        replies = JudgeClient(config(server.url, max_concurrency=3), cache).judge(requests)
        assert [r.text for r in replies] == [expected_text(r) for r in requests]
        assert 1 < server.max_in_flight <= 3
        again = JudgeClient(config(server.url), JudgmentCache(tmp_path / "c.jsonl"))
        assert [r.text for r in again.judge(requests)] == [r.text for r in replies]
    assert len(server.requests) == 12  # the second client sent nothing
    assert all(r.cached for r in again.judge(requests))


def test_crash_from_hook_loses_no_judgment(tmp_path):
    requests = make_requests(10)
    seen = []

    def crash_after_four(reply):
        seen.append(reply)
        if len(seen) == 4:
            raise RuntimeError("crash")

    with JudgeServer(delay_s=0.02) as server:
        client = JudgeClient(config(server.url, max_concurrency=2),
                             JudgmentCache(tmp_path / "c.jsonl"), on_reply=crash_after_four)
        with pytest.raises(RuntimeError, match="crash"):
            client.judge(requests)
        answered = len(server.requests)
        cached = JudgmentCache(tmp_path / "c.jsonl")
        assert len(cached) == answered >= 4  # every answer the judge gave is on disk
        replies = JudgeClient(config(server.url), cached).judge(requests)
    assert len(server.requests) == 10  # the re-run asked only for the missing ones
    assert [r.text for r in replies] == [expected_text(r) for r in requests]


CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[3])
    from evals.judge import JudgeClient, JudgeConfig, JudgmentCache
    from test_judge import make_requests
    cfg = JudgeConfig(url=sys.argv[1], model="judge-model", max_concurrency=2, timeout_s=30)
    JudgeClient(cfg, JudgmentCache(sys.argv[2])).judge(make_requests(10))
""")


def test_sigkill_mid_judging_loses_no_judgment(tmp_path):
    cache_file = tmp_path / "c.jsonl"
    with JudgeServer(delay_s=0.02) as server:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (REPO, HERE, TESTS)))}
        child = subprocess.Popen([sys.executable, "-c", CHILD, server.url, str(cache_file),
                                  str(HERE)], env=env)

        def kill_on_sixth(n):
            if n == 6:
                os.kill(child.pid, signal.SIGKILL)

        server.on_request = kill_on_sixth
        assert child.wait(timeout=60) == -signal.SIGKILL
        server.on_request = None
        before = len(server.requests)
        lines = cache_file.read_text().splitlines()
        cached = JudgmentCache(cache_file)
        assert cached.torn_lines == 0 and len(cached) == len(lines) >= 4
        assert all(json.loads(line)["text"].startswith("Fine answer") for line in lines)
        requests = make_requests(10)
        JudgeClient(config(server.url), cached).judge(requests)
    assert len(server.requests) - before == 10 - len(lines)


def test_cache_skips_a_torn_last_line_and_appends_cleanly(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"key": "a", "text": "[[3]]"}) + "\n" + '{"key": "b", "te')
    cache = JudgmentCache(path)
    assert cache.torn_lines == 1 and cache.get("a")["text"] == "[[3]]" and cache.get("b") is None
    cache.put("b", "[[4]]")
    reread = JudgmentCache(path)
    assert reread.get("b")["text"] == "[[4]]" and reread.torn_lines == 1


def test_reply_names_the_snapshot_and_an_explicit_key_is_sent(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    with JudgeServer(snapshot="judge-model-2024-05-13") as server:
        cache = JudgmentCache(tmp_path / "c.jsonl")
        [fresh] = JudgeClient(config(server.url), cache, api_key="sk-held").judge(
            make_requests(1))
        [cached] = JudgeClient(config(server.url), JudgmentCache(tmp_path / "c.jsonl"),
                               api_key="sk-held").judge(make_requests(1))
    assert fresh.snapshot == "judge-model-2024-05-13" and not fresh.cached
    assert cached.cached and cached.snapshot == "judge-model-2024-05-13"
    assert server.authorizations == ["Bearer sk-held"]  # the held key, not the environment's
