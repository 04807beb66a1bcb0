"""Loss labels checked token by token: the labelled positions decode to exactly the assistant
replies (each followed by EOS), with SmolLM2's tokenizer and a LLaMA-style SentencePiece BPE built
offline here; mismatches, special tokens and over-long samples are counted errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from chat_samples import MULTI, SAMPLES, SINGLE

from trainers.data.formatting import (
    IGNORE,
    FormatError,
    tokenize_batch,
    tokenize_conversation,
)
from trainers.data.vicuna import eos_text_for, generation_prompt


@pytest.fixture(params=["smollm2", "llama"])
def any_tokenizer(request, tokenizer, llama_tokenizer):
    return tokenizer if request.param == "smollm2" else llama_tokenizer


def test_llama_style_tokenizer_behaves_like_llama(llama_tokenizer):
    tok = llama_tokenizer
    ids = tok("USER: Hi ASSISTANT: Hello!</s>USER: Ω").input_ids
    assert ids[0] == tok.bos_token_id == 1
    assert tok.eos_token_id == 2 and ids.count(2) == 1  # "</s>" in text is the EOS id
    assert "<0xCE>" in tok.convert_ids_to_tokens(ids)  # byte fallback for an unseen character
    assert tok.convert_ids_to_tokens(ids)[1].startswith("▁")
    assert eos_text_for(tok) == "</s>"


def _runs(labels) -> list[list[int]]:
    runs, current = [], []
    for pos, label in enumerate(labels):
        if label != IGNORE:
            current.append(pos)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_labelled_tokens_decode_to_exactly_the_replies(any_tokenizer, name):
    tok, messages = any_tokenizer, SAMPLES[name]
    row = tokenize_conversation(messages, tok)
    ids, labels = row["input_ids"], row["labels"]
    assert len(ids) == len(labels) and not row["truncated"]
    replies = [m["content"] for m in messages if m["role"] == "assistant"]
    runs = _runs(labels)
    assert len(runs) == len(replies)
    eos = eos_text_for(tok)
    # decoded after an anchor token, since LLaMA's decoder strips the first leading space
    anchor = tok("A", add_special_tokens=False).input_ids
    for k, (run, reply) in enumerate(zip(runs, replies)):
        assert [labels[p] for p in run] == [ids[p] for p in run]
        assert ids[run[-1]] == tok.eos_token_id
        decoded = tok.decode(anchor + [ids[p] for p in run], skip_special_tokens=False)
        # the space after "ASSISTANT:" belongs to the reply's first token
        assert decoded == "A " + reply + eos
        # what precedes the reply is token for token what inference feeds the model
        turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        prompt = tok(generation_prompt(messages[: turns[k]], eos_text=eos)).input_ids
        assert ids[: run[0]] == prompt


class _MismatchedTokenizer:
    """SmolLM2's tokenizer claiming LLaMA's "</s>" as its EOS text: the FastChat-style mismatch."""

    def __init__(self, inner):
        self._inner, self.eos_token = inner, "</s>"

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def __call__(self, *args, **kwargs):
        return self._inner(*args, **kwargs)


def test_mismatched_eos_is_an_error_not_a_masked_sample(tokenizer):
    with pytest.raises(FormatError) as err:
        tokenize_conversation(SINGLE, _MismatchedTokenizer(tokenizer))
    assert err.value.reason == "template_mismatch"


def test_token_straddling_a_reply_boundary_is_an_error():
    from core.model import load_tokenizer

    tok = load_tokenizer("tiny_llama")
    tok.add_tokens([": 2"])  # merges the role colon with the reply's first characters
    with pytest.raises(FormatError) as err:
        tokenize_conversation(SINGLE, tok)
    assert err.value.reason == "template_mismatch" and "straddles" in str(err.value)


def test_special_token_inside_content_is_rejected(any_tokenizer):
    eos = eos_text_for(any_tokenizer)
    for role in ("user", "assistant"):
        messages = [dict(m) for m in SINGLE]
        turn = next(m for m in messages if m["role"] == role)
        turn["content"] = f"stop {eos} here"
        with pytest.raises(FormatError) as err:
            tokenize_conversation(messages, any_tokenizer)
        assert err.value.reason == "special_token_in_text"


def test_overlong_samples_are_truncated_or_dropped_and_reported(any_tokenizer):
    full = tokenize_conversation(MULTI, any_tokenizer)
    n = len(full["input_ids"])
    first_reply = _runs(full["labels"])[0]
    cut = first_reply[0] + 2
    row = tokenize_conversation(MULTI, any_tokenizer, max_len=cut, overlong="truncate")
    assert row["truncated"] and len(row["input_ids"]) == cut
    assert row["input_ids"] == full["input_ids"][:cut] and row["labels"] == full["labels"][:cut]
    with pytest.raises(FormatError) as err:
        tokenize_conversation(MULTI, any_tokenizer, max_len=cut, overlong="drop")
    assert err.value.reason == "over_max_len"
    with pytest.raises(FormatError) as err:  # nothing left to learn from
        tokenize_conversation(MULTI, any_tokenizer, max_len=first_reply[0], overlong="truncate")
    assert err.value.reason == "no_assistant_tokens"
    assert not tokenize_conversation(MULTI, any_tokenizer, max_len=n)["truncated"]


def test_bad_messages_are_counted_reasons(tokenizer):
    cases = {
        "no_assistant_tokens": [{"role": "user", "content": "hi"}],
        "bad_messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}],
    }
    empty_reply = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]
    with pytest.raises(FormatError) as err:  # fschat renders no end-of-turn for an empty reply
        tokenize_conversation(empty_reply, tokenizer)
    assert err.value.reason == "bad_messages"
    for reason, messages in cases.items():
        with pytest.raises(FormatError) as err:
            tokenize_conversation(messages, tokenizer)
        assert err.value.reason == reason
    import pickle

    copy = pickle.loads(pickle.dumps(FormatError("over_max_len", "9 > 8")))
    assert (copy.reason, str(copy)) == ("over_max_len", "over_max_len: 9 > 8")
    with pytest.raises(ValueError, match="overlong"):
        tokenize_conversation(SINGLE, tokenizer, overlong="wrap")


def _batch_messages():
    bad = [{"role": "user", "content": "no reply"}]
    return [SINGLE, bad, MULTI]


def test_tokenize_batch_numpy_and_pandas_count_rejects(tokenizer):
    msgs = _batch_messages()
    numpy_batch = {"id": np.array(["a", "b", "c"]), "messages": np.array(msgs, dtype=object)}
    n_single = len(tokenize_conversation(SINGLE, tokenizer)["input_ids"])
    out = tokenize_batch(numpy_batch, tokenizer, max_len=n_single, overlong="truncate")
    assert list(out["reject_reason"]) == ["", "no_assistant_tokens", ""]
    assert list(out["id"]) == ["a", "b", "c"] and "messages" not in out
    assert list(out["n_tokens"]) == [len(x) for x in out["input_ids"]]
    assert out["n_tokens"][1] == 0 and out["n_tokens"][2] == n_single
    assert list(out["truncated"]) == [False, False, True]
    frame = tokenize_batch(pd.DataFrame({"id": ["a", "b", "c"], "messages": msgs}), tokenizer)
    assert list(frame["reject_reason"]) == ["", "no_assistant_tokens", ""]
    assert frame["input_ids"][0] == tokenize_conversation(SINGLE, tokenizer)["input_ids"]
