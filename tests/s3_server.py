"""A loopback S3 API for the tests: moto's standalone server in a subprocess of its own (so a
busy test process never stalls it) on a free port, with dummy credentials.

The environment (AWS_ENDPOINT_URL, keys, region) is set when conftest imports this module,
before the session's Ray starts, so Ray's workers inherit it; the server itself starts only when
a test asks for the `s3` fixture. Tests can never reach a real account: the endpoint is ours.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PORT = free_port()
ENDPOINT = f"http://127.0.0.1:{PORT}"
ENV = {"AWS_ENDPOINT_URL": ENDPOINT, "AWS_ACCESS_KEY_ID": "dmt-test-access",
       "AWS_SECRET_ACCESS_KEY": "dmt-test-secret", "AWS_DEFAULT_REGION": "us-east-1",
       "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
os.environ.update(ENV)


class S3Server:
    """Start with `start()`, stop with `stop()` (only the process this object started)."""

    def __init__(self):
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60.0) -> S3Server:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(PORT)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **ENV})
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", PORT), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"moto server did not listen on {ENDPOINT} in {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None

    def new_bucket(self, prefix: str = "dmt") -> str:
        """A fresh bucket (valid S3 name), created through boto3; returns its name."""
        import boto3

        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=ENDPOINT).create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        import boto3

        pages = boto3.client("s3", endpoint_url=ENDPOINT).get_paginator("list_objects_v2")
        return [o["Key"] for page in pages.paginate(Bucket=bucket) for o in page.get("Contents", [])]
