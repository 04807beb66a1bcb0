"""Shared fixtures: the SmolLM2 tokenizer, the tiny model, one local Ray for the session,
and the real public files in ../shared/data (tests that need them skip with a message)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from chat_samples import llama_tokenizer as train_llama_tokenizer
from s3_server import S3Server

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("DMT_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="session")
def s3_server():
    """The loopback S3 server (tests/s3_server.py), one per session, started on first use."""
    try:
        import boto3  # noqa: F401
        import moto  # noqa: F401
    except ImportError:
        pytest.fail("moto[server] and boto3 are dev dependencies: bash scripts/dev.sh installs them")
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture()
def s3(s3_server):
    """A fresh bucket on the loopback server: (server, "s3://<bucket>")."""
    return s3_server, f"s3://{s3_server.new_bucket()}"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real public data not found at {SHARED_DATA} (set DMT_SHARED_DATA to run)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tokenizer():
    from core.model import load_tokenizer

    return load_tokenizer("tiny_llama")


@pytest.fixture()
def tiny_model():
    from core.model import build_model

    return build_model("tiny_llama", seed=0)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray per test session: 2 CPUs, and a custom resource for Tune trial drivers
    (a driver holding a CPU starves its own Train workers on 2 cores)."""
    import ray

    if not ray.is_initialized():
        temp = tempfile.mkdtemp(prefix="ray-tests-")
        ray.init(
            num_cpus=2,
            resources={"train_driver": 4},
            include_dashboard=False,
            _temp_dir=temp,
            log_to_driver=False,
        )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def llama_tokenizer():
    """A BOS-adding SentencePiece-style tokenizer, trained here (tests/chat_samples.py)."""
    return train_llama_tokenizer()
