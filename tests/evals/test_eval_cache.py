"""The eval result cache: what a key depends on, model identities, atomic writes."""

from __future__ import annotations

import json
import os
import threading

from evals.cache import EvalCache, data_identity, make_key, model_identity

DECODING = {"max_new_tokens": 256, "temperature": 0.0, "stop": ["</s>", "USER:"]}


def test_put_get_and_what_a_key_depends_on(tmp_path):
    cache = EvalCache(tmp_path)
    key = make_key("preset:tiny_llama", "gsm8k", "1", DECODING, 20, "data.jsonl")
    assert cache.get(key) is None
    cache.put(key, {"metrics": {"accuracy": 0.25}})
    assert EvalCache(tmp_path).get(key) == {"metrics": {"accuracy": 0.25}}
    # The order of the decoding settings does not matter; each field does.
    same = make_key("preset:tiny_llama", "gsm8k", "1", dict(reversed(DECODING.items())), 20,
                    "data.jsonl")
    assert same == key and cache.get(same) == {"metrics": {"accuracy": 0.25}}
    for other in [
        make_key("preset:smollm2_135m", "gsm8k", "1", DECODING, 20, "data.jsonl"),
        make_key("preset:tiny_llama", "gsm8k", "2", DECODING, 20, "data.jsonl"),
        make_key("preset:tiny_llama", "gsm8k", "1", {**DECODING, "max_new_tokens": 8}, 20,
                 "data.jsonl"),
        make_key("preset:tiny_llama", "gsm8k", "1", DECODING, None, "data.jsonl"),
        make_key("preset:tiny_llama", "gsm8k", "1", DECODING, 20, "other.jsonl"),
        make_key("preset:tiny_llama", "humaneval", "1", DECODING, 20, "data.jsonl"),
    ]:
        assert cache.get(other) is None


def test_a_file_under_the_wrong_key_is_never_returned(tmp_path):
    cache = EvalCache(tmp_path)
    key = make_key("m", "gsm8k", "1", DECODING, 5)
    path = cache.put(key, {"metrics": {"accuracy": 1.0}})
    stored = json.loads(path.read_text())
    stored["key"]["limit"] = 6
    path.write_text(json.dumps(stored))
    assert cache.get(key) is None


def test_concurrent_puts_leave_one_whole_file(tmp_path):
    cache = EvalCache(tmp_path)
    key = make_key("m", "gsm8k", "1", DECODING, 5)
    results = [{"metrics": {"accuracy": i / 10}, "pad": "x" * 100_000} for i in range(8)]
    threads = [threading.Thread(target=cache.put, args=(key, r)) for r in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.get(key) in results
    assert os.listdir(cache.path(key).parent) == [cache.path(key).name]  # no temp files left


def test_model_identities(tmp_path):
    assert model_identity("tiny_llama") == "preset:tiny_llama"
    assert model_identity("org/some-model") == "hf:org/some-model"
    assert model_identity(object()) is None
    stage = tmp_path / "stages" / "abc"
    stage.mkdir(parents=True)
    (stage / "manifest.json").write_text(json.dumps({"stage_id": "abc123", "recipe": "math=1"}))
    assert model_identity(str(stage)) == "stage:abc123"
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "config.json").write_text('{"hidden_size": 64}')
    (plain / "model.safetensors").write_bytes(b"1234")
    first = model_identity(plain)
    assert first.startswith("path:") and model_identity(plain) == first
    (plain / "model.safetensors").write_bytes(b"12345")  # new weights
    second = model_identity(plain)
    assert second != first
    (plain / "config.json").write_text('{"hidden_size": 65}')
    assert model_identity(plain) != second


def test_data_identity(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text("{}\n")
    first = data_identity(path)
    path.write_text("{}\n{}\n")
    assert data_identity(path) != first
    folder = tmp_path / "mt_bench"
    folder.mkdir()
    (folder / "question.jsonl").write_text("{}\n")
    before = data_identity(folder)
    (folder / "question.jsonl").write_text("{}\n{}\n")
    assert data_identity(folder) != before
    assert data_identity("openai/gsm8k") == "openai/gsm8k" and data_identity(None) == ""


def test_items_round_trip(tmp_path):
    cache = EvalCache(tmp_path)
    key = make_key("m", "gsm8k", "2", DECODING, 2)
    result = {"metrics": {"accuracy_flexible": 0.5, "ref_logprob": -1.25},
              "items": [{"item": "gsm8k/0", "metric": "accuracy_flexible", "value": 1.0},
                        {"item": "gsm8k/1", "metric": "accuracy_flexible", "value": 0.0},
                        {"item": "gsm8k/0", "metric": "ref_logprob", "value": -1.0},
                        {"item": "gsm8k/1", "metric": "ref_logprob", "value": -1.5}]}
    cache.put(key, result)
    assert EvalCache(tmp_path).get(key) == result
