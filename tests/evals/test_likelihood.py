"""evals/likelihood.py on the tiny random model: reference rows token-exact with training and
generation, batched scores equal to one-at-a-time ones (right and left padding), a score checked
against a hand computation, and general_loss's metrics, items and rejects."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from evals import likelihood
from evals.likelihood import TargetScore, reference_row, score_rows
from trainers.data.formatting import IGNORE, tokenize_conversation
from trainers.data.records import Rejects
from trainers.data.vicuna import generation_prompt

QUESTIONS = [
    ("Tom has 3 apples and buys 2 more. How many apples?", "3 + 2 = <<3+2=5>>5\n#### 5"),
    ("What is 7 * 8?", "7 * 8 = 56\n#### 56"),
    (("A train goes 60 miles per hour for 2 hours and 30 miles per hour for 3 hours. "
      "How far does it go in total?"),
     ("First 60 * 2 = <<60*2=120>>120 miles.\nThen 30 * 3 = <<30*3=90>>90 miles.\n"
      "Total 120 + 90 = <<120+90=210>>210.\n#### 210")),
]


def conv(question: str) -> list[dict]:
    return [{"role": "user", "content": question}]


@pytest.fixture(scope="module")
def model():
    from core.model import build_model

    return build_model("tiny_llama", seed=0).eval()


@pytest.fixture(scope="module")
def rows(tokenizer):
    out = [reference_row(tokenizer, conv(q), a) for q, a in QUESTIONS]
    chat = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Any tips for Lisbon?"},
            {"role": "assistant", "content": "Start early.\n\nTry the markets."}]
    out.append(tokenize_conversation(chat, tokenizer))  # two replies, labels in two spans
    return out


def test_reference_row_is_the_generation_prompt_then_the_reply_and_eos(tokenizer):
    question, answer = QUESTIONS[0]
    row = reference_row(tokenizer, conv(question), answer)
    first = next(i for i, label in enumerate(row["labels"]) if label != IGNORE)
    prompt = generation_prompt(conv(question), eos_text=tokenizer.eos_token)
    assert row["input_ids"][:first] == tokenizer(prompt)["input_ids"]
    assert all(label != IGNORE for label in row["labels"][first:])
    assert row["labels"][first:] == row["input_ids"][first:]
    assert row["input_ids"][-1] == tokenizer.eos_token_id  # the end-of-turn is a target
    assert tokenizer.decode(row["input_ids"][first:]) == " " + answer + tokenizer.eos_token


def test_batched_equals_one_at_a_time(model, rows):
    alone = [score_rows(model, [r])[0] for r in rows]
    for side in ("right", "left"):
        batched = score_rows(model, rows, batch_size=8, padding_side=side)
        for a, b in zip(alone, batched, strict=True):
            assert a.tokens == b.tokens
            assert b.logprob == pytest.approx(a.logprob, abs=1e-4), side
            assert b.mean == pytest.approx(a.mean, abs=1e-4)
    # a token budget that splits the rows into several batches gives the same numbers
    small = score_rows(model, rows, max_batch_tokens=2 * max(len(r["input_ids"]) for r in rows))
    assert [s.logprob for s in small] == pytest.approx([s.logprob for s in alone], abs=1e-4)


def test_full_logits_path_agrees(model, rows, monkeypatch):
    """Models without `logits_to_keep` get the LM head everywhere: the same numbers."""
    kept = score_rows(model, rows, padding_side="left")
    monkeypatch.setattr(likelihood, "_keeps_logits", lambda m: False)
    full = score_rows(model, rows, padding_side="left")
    assert [s.tokens for s in full] == [s.tokens for s in kept]
    assert [s.logprob for s in full] == pytest.approx([s.logprob for s in kept], abs=1e-4)


def test_against_a_hand_computation(model, tokenizer):
    ids = tokenizer("The cat sat on the mat")["input_ids"]
    labels = [IGNORE, IGNORE, *ids[2:]]  # the first two tokens are context
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    expected = 0.0
    for t in range(2, len(ids)):  # token t is predicted by the logits at t - 1
        row = logits[t - 1]
        expected += float(row[ids[t]] - torch.logsumexp(row, dim=0))
    (score,) = score_rows(model, [{"input_ids": ids, "labels": labels}])
    assert score.tokens == len(ids) - 2
    assert score.logprob == pytest.approx(expected, abs=1e-4)
    assert score.mean == pytest.approx(expected / (len(ids) - 2), abs=1e-5) and score.mean < 0
    assert score.nll == -score.mean
    assert math.isnan(TargetScore(0.0, 0).mean)


def test_score_replies_keeps_order_and_marks_unscorable(model, tokenizer):
    convs = [conv(q) for q, _ in QUESTIONS]
    answers = [a for _, a in QUESTIONS]
    bad = f"before {tokenizer.eos_token} after"  # a special token inside the text
    scores = likelihood.score_replies(model, tokenizer, [*convs, conv("Hi")], [*answers, bad])
    assert scores[-1] is None and all(s is not None for s in scores[:-1])
    alone = [likelihood.score_replies(model, tokenizer, [c], [a])[0]
             for c, a in zip(convs, answers, strict=True)]
    assert [s.mean for s in scores[:-1]] == pytest.approx([s.mean for s in alone], abs=1e-4)
    with pytest.raises(ValueError, match="2 replies for 3"):
        likelihood.score_replies(model, tokenizer, convs, answers[:2])


def test_general_loss_metrics_items_and_rejects(model, tokenizer):
    chats = [
        {"id": "a", "messages": [{"role": "user", "content": "Hi"},
                                 {"role": "assistant", "content": "Hello, how can I help?"}]},
        {"id": "b", "messages": [{"role": "user", "content": "Plan a trip to Kyoto."},
                                 {"role": "assistant", "content": "Go in spring. " * 10},
                                 {"role": "user", "content": "Shorter?"},
                                 {"role": "assistant", "content": "Spring."}]},
        {"id": "c", "messages": [{"role": "user", "content": "x"},
                                 {"role": "assistant", "content": f"y {tokenizer.eos_token}"}]},
    ]
    rejects = Rejects()
    metrics, items, records = likelihood.general_loss(model, tokenizer, chats, rejects=rejects)
    assert rejects.counts == {"special_token_in_text": 1}
    assert [i["item"] for i in items] == ["a", "b"] and metrics["scored"] == 2
    assert {i["metric"] for i in items} == {"general_loss"}
    assert metrics["general_loss"] == pytest.approx(statistics.fmean(i["value"] for i in items))
    tokens = [r["tokens"] for r in records]
    weighted = sum(r["loss"] * n for r, n in zip(records, tokens, strict=True)) / sum(tokens)
    assert metrics["general_loss_tokens"] == pytest.approx(weighted)
    # a random model is close to uniform over the vocabulary: about ln(V) nats per token
    assert abs(metrics["general_loss"] - math.log(len(tokenizer))) < 1.0
    # training's truncation: the overlong chat keeps its first max_len tokens
    full = len(tokenize_conversation(chats[1]["messages"], tokenizer)["input_ids"])
    short = likelihood.GeneralLoss(max_len=full - 5)
    m2, _, r2 = likelihood.general_loss(model, tokenizer, chats[:2], spec=short)
    assert r2[1]["truncated"] and r2[1]["tokens"] < records[1]["tokens"]
    assert not r2[0]["truncated"] and r2[0]["loss"] == pytest.approx(records[0]["loss"])
    assert m2["scored"] == 2
