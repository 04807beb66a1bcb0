"""Chats of one, several and system turns, and a LLaMA-style tokenizer trained on them (the
`llama_tokenizer` fixture: conftest.py), shared by the formatting and chat-template tests."""

from __future__ import annotations

import json

from trainers.data.vicuna import render

SINGLE = [
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "2 + 3 = 5."},
]


MULTI = [
    {"role": "user", "content": "Write a function that adds two numbers."},
    {"role": "assistant", "content": "```python\ndef add(a, b):\n    return a + b\n```"},
    {"role": "user", "content": "Now in one line, please."},
    {"role": "assistant", "content": "add = lambda a, b: a + b"},
    {"role": "user", "content": "Merci! Ça marche très bien 中文 🙂"},
    {"role": "assistant", "content": " 42 is the answer, café 🙂\n\n- done  "},
]


SYSTEM = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name a colour."},
    {"role": "assistant", "content": "Blue."},
]


SAMPLES = {"single": SINGLE, "multi": MULTI, "system": SYSTEM}


def llama_tokenizer():
    """A LLaMA-style tokenizer trained here: SentencePiece-style BPE ("▁" Metaspace, byte
    fallback), ids 0/1/2 = <unk>/<s>/</s>, BOS prepended, built by transformers' LlamaTokenizer
    exactly as it builds the real LLaMA one."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaTokenizer

    corpus = [render(m) for m in SAMPLES.values()] * 5
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    # split=True while training keeps merges inside words, as SentencePiece does
    bpe.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first", split=True)
    trainer = trainers.BpeTrainer(vocab_size=700, special_tokens=specials, show_progress=False)
    bpe.train_from_iterator(corpus, trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    tok = LlamaTokenizer(vocab=state["vocab"], merges=merges, add_bos_token=True)
    tok.pad_token = tok.eos_token
    return tok
