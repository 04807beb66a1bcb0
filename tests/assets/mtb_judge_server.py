"""A real HTTP server on loopback that speaks OpenAI's chat-completions API, for judge tests.

Replies follow a script of faults ("429", "500", "slow", "malformed", "empty", "norating",
"400"), consumed one per request in arrival order, then the default: a judgment whose rating is a
pure function of the request (`rating_for`), so tests can compute the expected scores themselves.
Every request body and Authorization header is recorded; replies name `snapshot` as their
`model` (what a real endpoint does: the dated model behind the alias asked for).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def rating_for(messages: list[dict]) -> int:
    digest = hashlib.sha256(messages[-1]["content"].encode()).digest()
    return digest[0] % 10 + 1


def completion(text: str, model: str = "judge") -> bytes:
    return json.dumps({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
    }).encode()


class JudgeServer:
    def __init__(self, faults: list[str] | None = None, slow_s: float = 1.5, delay_s: float = 0.0,
                 snapshot: str = "judge"):
        self.faults = list(faults or [])
        self.snapshot = snapshot
        self.authorizations: list[str | None] = []
        self.slow_s = slow_s
        self.delay_s = delay_s  # every ok reply waits this long, so concurrency shows
        self.requests: list[dict] = []
        self.raw_bodies: list[bytes] = []
        self.lock = threading.Lock()
        self.on_request = None  # called with the request count after recording each request
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next(self, body: bytes, authorization: str | None = None) -> str:
        with self.lock:
            self.authorizations.append(authorization)
            self.raw_bodies.append(body)
            self.requests.append(json.loads(body))
            n = len(self.requests)
            fault = self.faults.pop(0) if self.faults else "ok"
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        if self.on_request is not None:
            self.on_request(n)
        return fault

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fault = server._next(body, self.headers.get("Authorization"))
                request = json.loads(body)
                headers = {}
                if fault == "429":
                    status, data, headers = 429, b'{"error": {"message": "slow down"}}', {
                        "Retry-After": "0"}
                elif fault == "500":
                    status, data = 500, b'{"error": {"message": "boom"}}'
                elif fault == "400":
                    status, data = 400, b'{"error": {"message": "bad model"}}'
                elif fault == "malformed":
                    status, data = 200, b'{"choices": [{"message": {"content": "[[9'
                elif fault == "empty":
                    status, data = 200, completion("", server.snapshot)
                elif fault == "norating":
                    status, data = 200, completion("I cannot decide on a number.",
                                                   server.snapshot)
                else:
                    time.sleep(server.slow_s if fault == "slow" else server.delay_s)
                    rating = rating_for(request["messages"])
                    status, data = 200, completion(f"Fine answer. Rating: [[{rating}]]",
                                                   server.snapshot)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout tests)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def log_message(self, *args):
                pass

        return Handler
