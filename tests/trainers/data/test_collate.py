"""Padded and packed micro-batches; the proof that packing is real: a packed batch's loss equals the
token-weighted loss of its samples run one by one (tiny_llama, CPU sdpa and eager)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trainers.data.collate import (
    IGNORE,
    collate_packed,
    collate_padded,
    count_label_tokens,
    group_for_packing,
    padding_fraction,
)
from trainers.data.formatting import tokenize_conversation

CHATS = [
    [{"role": "user", "content": "Add 2 and 3."}, {"role": "assistant", "content": "5"}],
    [
        {"role": "user", "content": "Name two colours."},
        {"role": "assistant", "content": "Red and blue."},
        {"role": "user", "content": "One more?"},
        {"role": "assistant", "content": "Green, the colour of grass in spring."},
    ],
    [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Bonjour ! Comment puis-je vous aider ?"},
    ],
]


@pytest.fixture(scope="module")
def rows(tokenizer):
    return [tokenize_conversation(chat, tokenizer) for chat in CHATS]


def test_padded_batch_pads_to_the_longest_row():
    rows = [
        {"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]},
        {"input_ids": np.arange(10, 18), "labels": np.arange(10, 18)},
        {"input_ids": torch.tensor([1, 2, 3, 4, 5]), "labels": [IGNORE] * 4 + [5]},
    ]
    batch = collate_padded(rows, pad_id=0)
    assert batch["input_ids"].shape == batch["labels"].shape == (3, 8)
    assert batch["input_ids"][0].tolist() == [5, 6, 7, 0, 0, 0, 0, 0]
    assert batch["labels"][0].tolist() == [IGNORE, 6, 7] + [IGNORE] * 5
    assert batch["attention_mask"].sum(1).tolist() == [3, 8, 5]
    assert padding_fraction(batch) == pytest.approx((5 + 0 + 3) / 24)
    columns = {"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows]}
    assert torch.equal(collate_padded(columns, pad_id=0)["input_ids"], batch["input_ids"])
    with pytest.raises(ValueError, match="row 0"):
        collate_padded([{"input_ids": [1, 2], "labels": [1]}], pad_id=0)


def test_packed_batch_restarts_positions_and_cuts_labels_between_samples():
    rows = [{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]}]
    batch = collate_packed(rows, block_mask=True)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[IGNORE, 6, 7, IGNORE, 9]]
    allowed = batch["attention_mask"][0, 0] == 0
    assert allowed.tolist() == [
        [True, False, False, False, False],
        [True, True, False, False, False],
        [True, True, True, False, False],
        [False, False, False, True, False],
        [False, False, False, True, True],
    ]
    assert padding_fraction(batch) == 0.0
    assert group_for_packing([3, 4, 2, 9, 1], max_tokens=7) == [[0, 1], [2], [3], [4]]


def _separate_loss(model, rows) -> float:
    total, count = 0.0, 0
    for row in rows:
        batch = collate_padded([row], pad_id=0)
        n = count_label_tokens(batch)
        total += model(**batch, use_cache=False).loss.item() * n
        count += n
    return total / count


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_loss_equals_token_weighted_loss_of_separate_samples(tiny_model, rows, attn):
    model = tiny_model.eval()
    model.set_attn_implementation(attn)
    with torch.no_grad():
        expected = _separate_loss(model, rows)
        packed = collate_packed(rows)
        assert model(**packed, use_cache=False).loss.item() == pytest.approx(expected, abs=1e-5)
        masked = collate_packed(rows, block_mask=True)
        for use_cache in (False, True):  # the explicit mask blocks cross-sample attention anyway
            loss = model(**masked, use_cache=use_cache).loss.item()
            assert loss == pytest.approx(expected, abs=1e-5)
        padded = collate_padded(rows, pad_id=0)
        assert model(**padded, use_cache=False).loss.item() == pytest.approx(expected, abs=1e-5)
        assert padding_fraction(padded) > 0.0


def test_packed_without_use_cache_false_attends_across_samples(tiny_model, rows):
    """Documents transformers 5.24: with Llama's default use_cache=True (a cache is built) the
    packed-sequence mask is not applied. If this starts failing, transformers changed: update
    collate_packed's docstring."""
    with torch.no_grad():
        expected = _separate_loss(tiny_model.eval(), rows)
        leaky = tiny_model(**collate_packed(rows)).loss.item()
    assert abs(leaky - expected) > 1e-4
