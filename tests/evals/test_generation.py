"""Generation on the tiny model: batched greedy == one at a time, stop strings cut and end early."""

from __future__ import annotations

import pytest

from evals.generation import generate, generate_records, stop_strings, truncate
from evals.spec import EvalSpec

CONVERSATIONS = [[{"role": "user", "content": text}] for text in (
    "hi", "What is 7 times 8? Think step by step and explain.", "ok",
    "Write a haiku about the sea, the sky, and the long road home.", "2+2?", "Tell me more.")]


@pytest.fixture(scope="module")
def lively():
    """tiny_llama with larger random weights: its greedy replies differ from prompt to prompt
    (at the default init every prompt yields the same repeated token, which proves nothing)."""
    import torch

    from core.model import build_model, load_tokenizer

    model = build_model("tiny_llama", seed=0).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.3)
    return model, load_tokenizer("tiny_llama")


def test_batched_greedy_equals_one_at_a_time(lively):
    batched = generate(lively, CONVERSATIONS, max_new_tokens=8, stop=(), batch_size=4)
    single = [generate(lively, [c], max_new_tokens=8, stop=(), batch_size=1)[0]
              for c in CONVERSATIONS]
    assert batched == single
    assert len(set(batched)) == len(batched)  # distinct replies, in the conversations' order


def test_stop_strings_truncate_and_end_generation_early(lively):
    model, _ = lively
    free = generate(lively, CONVERSATIONS[:2], max_new_tokens=16, stop=(), batch_size=2)
    stops = tuple(reply[4:7] for reply in free)  # a piece from inside each free reply
    steps = []
    handle = model.register_forward_hook(lambda *args: steps.append(1))
    try:
        cut = generate(lively, CONVERSATIONS[:2], max_new_tokens=16, stop=stops, batch_size=2)
    finally:
        handle.remove()
    for reply, whole in zip(cut, free):
        assert whole.startswith(reply) and len(reply) < len(whole)
        assert not any(s in reply for s in stops)
    assert len(steps) < 16  # both stopped, so the batch ended before max_new_tokens


def test_truncate_and_stop_strings(tokenizer):
    assert truncate(" 2 + 2 = 4.</s>USER: more", ("</s>", "USER:")) == "2 + 2 = 4."
    assert truncate(" no stop here", ("</s>",)) == "no stop here"
    assert truncate("a USER: b </s>", ("</s>", "USER:")) == "a "
    assert stop_strings(tokenizer, ("</s>", "USER:")) == ("<|im_end|>", "</s>", "USER:")


def test_records_carry_ids_spec_and_samples(lively):
    spec = EvalSpec("demo", "1", max_new_tokens=4, stop=("USER:",), temperature=0.0,
                    n_samples=2)
    items = [("a", CONVERSATIONS[0]), ("b", CONVERSATIONS[1])]
    records = generate_records(lively, spec, items, batch_size=2)
    assert [(r["id"], r["sample"]) for r in records] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert all(r["eval"] == "demo" and r["version"] == "1" for r in records)
    assert records[0]["completion"] == records[2]["completion"]  # greedy: samples agree
