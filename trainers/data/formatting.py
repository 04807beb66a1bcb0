"""Conversations -> token ids and loss labels with a chat template (trainers/data/chat_template.py:
the paper's Vicuna v1.1 by default, or the tokenizer's own).

Labels are -100 everywhere except the assistant replies and their end-of-turn token. A sample
that cannot be labelled exactly raises `FormatError(reason)`, a counted reject.
    python -m trainers.data.formatting [MODEL [TEMPLATE]]   # one labelled sample, token by token
"""

from __future__ import annotations

import sys

import numpy as np

from core.model import load_tokenizer
from core.settings import DEFAULT_TEMPLATE
from trainers.data.chat_template import ChatTemplate, chat_template

IGNORE = -100
OVERLONG = ("truncate", "drop")

# Stable reject reasons: the pipeline counts rejects under these keys.
TEMPLATE_MISMATCH = "template_mismatch"
OVER_MAX_LEN = "over_max_len"
NO_ASSISTANT_TOKENS = "no_assistant_tokens"
SPECIAL_TOKEN_IN_TEXT = "special_token_in_text"
BAD_MESSAGES = "bad_messages"


class FormatError(ValueError):
    """A sample that cannot be tokenized with exact labels; `reason` is a short stable key."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    def __reduce__(self):  # keep `reason` when the error crosses a Ray process boundary
        return (FormatError, (self.reason, self.detail))


def tokenize_conversation(
    messages: list[dict], tokenizer, max_len: int = 2048, overlong: str = "truncate",
    template: str | ChatTemplate = DEFAULT_TEMPLATE,
) -> dict:
    """Token ids and labels of one conversation: `{"input_ids", "labels", "truncated"}`.

    The whole rendered text is tokenized once (so training sees exactly the tokens inference sees
    for the same prompt) and a token is labelled when its character span lies inside an assistant
    reply span (reply + EOS text). FastChat's trainer instead counts the tokens of each piece
    separately and, when the counts disagree with the whole (a tokenizer that merges differently
    at a boundary), masks the *whole* sample with a warning: a silent loss of data. Here any token
    straddling a reply boundary, a reply not covered by its own tokens, or an end-of-turn text not
    encoded as the template's end-of-turn id raises FormatError("template_mismatch") so the
    caller counts it. `template`: a name ("vicuna", "model") or a ChatTemplate built once.
    """
    if overlong not in OVERLONG:
        raise ValueError(f"overlong must be one of {OVERLONG}, got {overlong!r}")
    if not any(m.get("role") == "assistant" for m in messages):
        raise FormatError(NO_ASSISTANT_TOKENS, "conversation has no assistant turn")
    template = chat_template(template, tokenizer)
    try:
        if template.writes_special_tokens:
            refuse_special_text(messages, tokenizer)
        text, spans = template.render_with_spans(messages)
    except (KeyError, TypeError) as err:
        raise FormatError(BAD_MESSAGES, f"malformed message: {err!r}") from err
    except ValueError as err:  # TemplateError carries its own reason
        raise FormatError(getattr(err, "reason", BAD_MESSAGES), str(err)) from err
    encoded = tokenizer(text, return_offsets_mapping=True,
                        add_special_tokens=template.add_special_tokens)
    input_ids = list(encoded["input_ids"])
    labels = label_spans(input_ids, encoded["offset_mapping"], spans, tokenizer,
                         end_id=template.end_of_turn_id,
                         special_outside=template.writes_special_tokens)
    truncated = False
    if len(input_ids) > max_len:
        if overlong == "drop":
            raise FormatError(OVER_MAX_LEN, f"{len(input_ids)} tokens > max_len {max_len}")
        input_ids, labels, truncated = input_ids[:max_len], labels[:max_len], True
        if all(label == IGNORE for label in labels):
            raise FormatError(NO_ASSISTANT_TOKENS, f"no reply token within max_len {max_len}")
    return {"input_ids": input_ids, "labels": labels, "truncated": truncated}


def refuse_special_text(messages: list[dict], tokenizer) -> None:
    """A message whose text spells a special token (a chat log quoting "<|im_end|>"): where the
    template writes special tokens itself, they cannot be told apart from the template's own
    after tokenizing, so the message is refused before, not mislabelled."""
    for message in messages:
        for token in tokenizer.all_special_tokens:
            if token in message["content"]:
                raise FormatError(SPECIAL_TOKEN_IN_TEXT, f"{token!r} in a {message['role']} turn")


def label_spans(input_ids, offsets, spans, tokenizer, end_id: int | None = None,
                special_outside: bool = False) -> list[int]:
    """Labels for the tokens inside `spans`; raises FormatError unless every span is exact.

    Each span must end with `end_id` (default: the EOS id, Vicuna's end of turn). Special
    tokens outside the spans are refused unless `special_outside` (a template that writes its
    own, whose messages were checked by `refuse_special_text`)."""
    end_id = tokenizer.eos_token_id if end_id is None else end_id
    special = set(tokenizer.all_special_ids)
    labels = [IGNORE] * len(input_ids)
    end_positions = set()
    span_index, n_spans = 0, len(spans)
    cover = [start for start, _ in spans]  # how far each span is covered by its tokens
    last_token = [None] * n_spans
    for pos, (token, (a, b)) in enumerate(zip(input_ids, offsets)):
        while span_index < n_spans and a >= spans[span_index][1]:
            span_index += 1
        if span_index < n_spans and b > spans[span_index][0] and a < spans[span_index][1]:
            start, end = spans[span_index]
            if a < start or b > end:
                raise FormatError(TEMPLATE_MISMATCH, f"token {pos} {a}:{b} straddles {start}:{end}")
            if a > cover[span_index]:
                raise FormatError(TEMPLATE_MISMATCH, f"reply span {start}:{end} has a gap at {a}")
            cover[span_index] = max(cover[span_index], b)
            labels[pos] = int(token)
            last_token[span_index] = pos
        elif token in special and a < b and not special_outside:
            raise FormatError(SPECIAL_TOKEN_IN_TEXT, f"special token {token} at characters {a}:{b}")
    for i, (start, end) in enumerate(spans):
        pos = last_token[i]
        if pos is None or cover[i] != end:
            raise FormatError(TEMPLATE_MISMATCH, f"reply {i} ({start}:{end}) is not fully tokenized")
        if input_ids[pos] != end_id:
            raise FormatError(TEMPLATE_MISMATCH, f"reply {i} does not end with the end-of-turn "
                              f"id {end_id}")
        end_positions.add(pos)
    for pos, label in enumerate(labels):
        if label in special and pos not in end_positions:
            raise FormatError(SPECIAL_TOKEN_IN_TEXT, f"special token {label} inside a reply")
    return labels


def as_messages(value) -> list[dict]:
    """A `messages` cell as Ray Data/pandas hand it over (lists or arrays of dicts)."""
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in list(value)]


def tokenize_batch(batch, tokenizer, max_len: int = 2048, overlong: str = "truncate",
                   template: str = DEFAULT_TEMPLATE):
    """A Ray Data `map_batches` function (batch_format "pandas" or "numpy").

    Adds `input_ids`, `labels` (int64 arrays), `n_tokens`, `truncated` and `reject_reason` ("" when
    kept; rejected rows get empty ids) and keeps the other columns, so the pipeline counts rejects
    by reason and then filters them, instead of losing rows silently. trainers/data/pipeline.py calls
    it with a tokenizer cached once per Ray worker process.
    """
    columns = {name: batch[name] for name in batch if name != "messages"}
    template = chat_template(template, tokenizer)  # once per batch: "model" probes the template
    ids, labels, n_tokens, truncated, reasons = [], [], [], [], []
    for value in batch["messages"]:
        try:
            row = tokenize_conversation(as_messages(value), tokenizer, max_len, overlong,
                                        template)
            reason = ""
        except FormatError as err:
            row, reason = {"input_ids": [], "labels": [], "truncated": False}, err.reason
        ids.append(np.asarray(row["input_ids"], dtype=np.int64))
        labels.append(np.asarray(row["labels"], dtype=np.int64))
        n_tokens.append(len(row["input_ids"]))
        truncated.append(row["truncated"])
        reasons.append(reason)
    out = {
        **columns,
        "input_ids": _object_column(ids),
        "labels": _object_column(labels),
        "n_tokens": np.asarray(n_tokens, dtype=np.int64),
        "truncated": np.asarray(truncated, dtype=bool),
        "reject_reason": np.asarray(reasons, dtype=object),
    }
    if hasattr(batch, "columns"):  # pandas in, pandas out
        import pandas as pd  # lazy: light command (no pandas)

        out["input_ids"] = [list(map(int, x)) for x in ids]
        out["labels"] = [list(map(int, x)) for x in labels]
        return pd.DataFrame(out, index=batch.index)
    return out


def _object_column(arrays: list[np.ndarray]) -> np.ndarray:
    # np.array(list_of_arrays) would build a 2-D array when all rows happen to be equally long
    column = np.empty(len(arrays), dtype=object)
    column[:] = arrays
    return column


def describe(row: dict, tokenizer) -> str:
    """One line per token: id, label mark, token text. For eyes, not for code."""
    lines = []
    for token, label in zip(row["input_ids"], row["labels"]):
        mark = "L" if label != IGNORE else "."
        lines.append(f"{token:>7} {mark} {tokenizer.convert_ids_to_tokens(int(token))!r}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    tokenizer = load_tokenizer(argv[0] if argv else "tiny_llama")
    template = argv[1] if len(argv) > 1 else DEFAULT_TEMPLATE
    messages = [
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "2 + 3 = 5."},
    ]
    row = tokenize_conversation(messages, tokenizer, template=template)
    print(describe(row, tokenizer))


if __name__ == "__main__":
    main(sys.argv[1:])
