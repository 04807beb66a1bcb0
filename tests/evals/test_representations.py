"""Hidden-state t-SNE maps: seeded query sampling, pooling over the query's own tokens (checked
against the embedding table at layer 0), padding invariance, layer clamping, the PNG and the
parquet written by the command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from evals.representations import embed_and_plot, embed_queries, main, sample_queries

TEXTS = {
    "math": ["What is 17 times 3?", "Natalia sold 48 clips; how many in total?",
             "Solve x + 5 = 12.", "A train goes 60 km/h for 2 hours. How far?"],
    "code": ["Write a Python function that reverses a list.", "Fix this loop: for i in range(",
             "Implement fibonacci recursively in Python.", "What does `yield` do?"],
    "general": ["Tell me a story about a cat.", "What is the capital of France?",
                "Give three tips for sleeping well.", "Describe autumn in one sentence."],
}


@pytest.fixture()
def sources(tmp_path):
    paths = {}
    for name, texts in TEXTS.items():
        path = tmp_path / f"{name}.jsonl"
        with open(path, "w") as f:
            for i, text in enumerate(texts):
                messages = [{"role": "user", "content": text},
                            {"role": "assistant", "content": "ok"}]
                f.write(json.dumps({"id": f"{name}-{i}", "messages": messages}) + "\n")
        paths[name] = path
    return paths


def test_sampling_is_seeded_and_per_source(sources):
    a = sample_queries(sources, 3, seed=0)
    assert [q["id"] for q in a] == [q["id"] for q in sample_queries(sources, 3, seed=0)]
    assert {q["source"] for q in a} == set(TEXTS) and len(a) == 9
    just_math = sample_queries({"math": sources["math"]}, 3, seed=0)
    assert just_math == [q for q in a if q["source"] == "math"]
    assert len(sample_queries(sources, 100, seed=1)) == 12


def test_pooling_covers_exactly_the_query_tokens(tiny_model, tokenizer):
    texts = ["What is 17 times 3?", "Write a Python function that reverses a list of numbers."]
    got = embed_queries(tiny_model, tokenizer, texts, layer=0)
    table = tiny_model.get_input_embeddings().weight.detach().numpy()
    for text, vector in zip(texts, got, strict=True):
        ids = tokenizer(" " + text, add_special_tokens=False).input_ids  # "USER: <text>"
        np.testing.assert_allclose(vector, table[ids].mean(0), rtol=1e-5, atol=1e-6)
    # Deeper layers: the same query alone or padded beside a longer one gives the same vector.
    alone = embed_queries(tiny_model, tokenizer, texts[:1], layer=2)
    np.testing.assert_allclose(embed_queries(tiny_model, tokenizer, texts, layer=2)[0],
                               alone[0], rtol=1e-4, atol=1e-5)


def test_maps_written_as_png_and_parquet(sources, tmp_path, tiny_model, tokenizer):
    result = embed_and_plot([("tiny_llama", tiny_model, tokenizer)], sources, tmp_path / "out",
                            n_per_source=3)
    assert result["layers"] == {"tiny_llama": 2}  # 15 clamped to the tiny model's 2 layers
    assert result["counts"] == {"math": 3, "code": 3, "general": 3}
    frame = pd.read_parquet(result["parquet"])
    assert list(frame.columns) == ["source", "id", "x", "y", "model", "layer"]
    assert len(frame) == 9 and frame[["x", "y"]].notna().all().all()
    assert frame["x"].std() > 0 and set(frame["model"]) == {"tiny_llama"}
    with open(result["pngs"][0], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_command_rejects_a_source_without_a_name(capsys):
    with pytest.raises(SystemExit):
        main(["--model", "tiny_llama", "--out", "x", "--source", "just/a/path.jsonl"])
    assert "NAME=PATH_OR_HF_ID" in capsys.readouterr().err
