"""An LLM judge behind any OpenAI-compatible chat-completions endpoint (GPT-4, or a vLLM server).

Bounded concurrency (a thread pool), retries with exponential backoff and jitter on 429, 5xx,
timeouts, connection errors and malformed replies, never on other 4xx; every judgment is cached on
disk (append-only JSONL, fsync per record) before it counts, so a crash loses none. Used by
`evals.mtbench`; run through `python -m evals.run --evals mtbench --judge-url URL --judge-model M`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# A local vLLM server needs no key, but the SDK refuses an empty one.
NO_KEY_PLACEHOLDER = "EMPTY"


@dataclass(frozen=True)
class JudgeConfig:
    url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 8
    max_retries: int = 8
    timeout_s: float = 120.0
    repeats: int = 3
    temperature: float = 0.0
    max_tokens: int = 2048
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0
    max_malformed: int = 3  # retries for a 200 reply that holds no usable text


@dataclass(frozen=True)
class JudgeRequest:
    """One judgment to make; `key` says what it depends on (see `cache_key`)."""

    key: str
    messages: tuple[dict, ...]


@dataclass(frozen=True)
class JudgeReply:
    key: str
    text: str | None  # None: the endpoint never gave a usable reply (see `error`)
    error: str | None = None
    cached: bool = False
    snapshot: str | None = None  # the model the endpoint says answered (its `model` field)


class JudgeError(RuntimeError):
    """A reply that retrying cannot fix (a 4xx other than 429: bad key, model or request)."""


def cache_key(question_id, turn: int, answer_hash: str, judge_model: str, prompt_version: str,
              repeat: int) -> str:
    fields = [str(question_id), str(turn), answer_hash, judge_model, prompt_version, str(repeat)]
    return hashlib.sha256("\x1f".join(fields).encode()).hexdigest()


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class JudgmentCache:
    """Append-only JSONL of `{"key", "text", ...}`; each record is fsynced before it is used.

    A process killed mid-write leaves at most one torn last line: it is skipped (and counted in
    `torn_lines`), and that judgment is simply asked again.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = {}
        self.torn_lines = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                    self._entries[record["key"]] = record
                except (json.JSONDecodeError, KeyError, TypeError):
                    self.torn_lines += 1

    def get(self, key: str) -> dict | None:
        return self._entries.get(key)

    def put(self, key: str, text: str, meta: dict | None = None) -> None:
        record = {"key": key, "text": text, **(meta or {})}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            # A torn previous line must not swallow this record: start on a fresh line.
            with open(self.path, "a+b") as f:
                if f.tell() > 0:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        f.write(b"\n")
                f.write(line.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            self._entries[key] = record

    def __len__(self) -> int:
        return len(self._entries)


class _Malformed(Exception):
    pass


def _is_retryable(error: Exception) -> bool:
    import openai  # lazy: light command (no openai until a judge is called)

    if isinstance(error, (openai.APITimeoutError, openai.APIConnectionError)):
        return True  # APITimeoutError subclasses APIConnectionError; both named for clarity
    if isinstance(error, openai.APIStatusError):
        return error.status_code == 429 or error.status_code >= 500
    return False


def _retry_after_s(error: Exception) -> float | None:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            return None  # an HTTP-date: fall back to our own backoff
    return None


class JudgeClient:
    """Asks the judge for each request not already cached, a few at a time.

    `on_reply(reply)` runs after each new judgment is cached (the crash tests raise from it).
    `api_key`: the key itself (the sweep's driver holds it); None reads `config.api_key_env`.
    """

    def __init__(self, config: JudgeConfig, cache: JudgmentCache,
                 on_reply: Callable[[JudgeReply], None] | None = None,
                 api_key: str | None = None):
        import openai  # lazy: light command (no openai until a judge is called)

        self.config = config
        self.cache = cache
        self.on_reply = on_reply
        if api_key is None:
            api_key = os.environ.get(config.api_key_env)
        api_key = api_key or NO_KEY_PLACEHOLDER
        # Retries are ours (backoff, jitter, malformed replies), so the SDK makes none.
        self._client = openai.OpenAI(base_url=config.url, api_key=api_key,
                                     timeout=config.timeout_s, max_retries=0)
        self.requests_sent = 0
        self._count_lock = threading.Lock()

    def judge(self, requests: Sequence[JudgeRequest]) -> list[JudgeReply]:
        """Replies in the order of `requests`; cached ones are never sent."""
        replies: dict[int, JudgeReply] = {}
        todo = []
        for i, request in enumerate(requests):
            hit = self.cache.get(request.key)
            if hit is not None:
                replies[i] = JudgeReply(request.key, hit["text"], cached=True,
                                        snapshot=hit.get("snapshot"))
            else:
                todo.append(i)
        pool = ThreadPoolExecutor(max_workers=max(1, self.config.max_concurrency))
        try:
            futures = {i: pool.submit(self._ask_and_cache, requests[i]) for i in todo}
            for i, future in futures.items():
                replies[i] = future.result()  # re-raises JudgeError and hook failures
        finally:
            # On a failure, requests not yet started are dropped; those in flight finish and
            # are cached, so nothing the judge answered is lost.
            pool.shutdown(wait=True, cancel_futures=True)
        return [replies[i] for i in range(len(requests))]

    def _ask_and_cache(self, request: JudgeRequest) -> JudgeReply:
        text, error, snapshot = self._ask(request.messages)
        reply = JudgeReply(request.key, text, error, snapshot=snapshot)
        if text is not None:
            self.cache.put(request.key, text,
                           {"judge_model": self.config.model, "snapshot": snapshot})
        if self.on_reply is not None:
            self.on_reply(reply)
        return reply

    def _ask(self, messages: Sequence[dict]) -> tuple[str | None, str | None, str | None]:
        """(text, error, snapshot)."""
        import openai  # lazy: light command (no openai until a judge is called)

        malformed = 0
        last_error = "no attempt"
        for attempt in range(self.config.max_retries + 1):
            retry_after = None
            try:
                text, snapshot = self._complete(messages)
                return text, None, snapshot
            except _Malformed as e:
                malformed += 1
                last_error = f"malformed reply: {e}"
                if malformed > self.config.max_malformed:
                    break
            except (openai.APIError, json.JSONDecodeError) as e:
                if isinstance(e, openai.APIStatusError) and not _is_retryable(e):
                    raise JudgeError(
                        f"judge {self.config.model} at {self.config.url} answered "
                        f"{e.status_code}: {e.message}"
                    ) from e
                if isinstance(e, json.JSONDecodeError):
                    malformed += 1
                    if malformed > self.config.max_malformed:
                        last_error = f"malformed reply: {e}"
                        break
                last_error = f"{type(e).__name__}: {e}"
                retry_after = _retry_after_s(e)
            if attempt < self.config.max_retries:
                time.sleep(self._backoff_s(attempt, retry_after))
        return None, last_error, None

    def _complete(self, messages: Sequence[dict]) -> tuple[str, str | None]:
        """(text, snapshot): the reply and the exact model the endpoint reports (an alias such
        as "gpt-4" drifts; the dated snapshot behind it is what graded)."""
        with self._count_lock:
            self.requests_sent += 1
        response = self._client.chat.completions.create(
            model=self.config.model,
            messages=list(messages),
            n=1,
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens,
        )
        choices = getattr(response, "choices", None)
        if not choices:
            raise _Malformed("no choices")
        text = choices[0].message.content if choices[0].message else None
        if not isinstance(text, str) or not text.strip():
            raise _Malformed("empty content")
        snapshot = getattr(response, "model", None)
        return text, snapshot if isinstance(snapshot, str) and snapshot else None

    def _backoff_s(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.config.backoff_max_s, self.config.backoff_base_s * 2**attempt)
        backoff *= 0.5 + random.random() / 2  # jitter: concurrent retries spread out
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, self.config.backoff_max_s))
        return backoff
