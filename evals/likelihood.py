"""Log-likelihood of given tokens under the model: low-variance companions of the benchmark scores.

Two uses, both teacher-forced (one forward pass per batch, no generation):
- `ref_logprob` (GSM8K, HumanEval): the mean log-probability per token (natural log, so <= 0;
  higher is better) of the benchmark's reference answer, written as the reply the model is asked
  for, conditioned on exactly the generation prompt of the training template
  (`trainers.data.chat_template`: the paper's Vicuna or the tokenizer's own) and followed by the
  end-of-turn token the model is trained to emit. The target tokens are the ones
  training labels (`trainers.data.formatting.tokenize_conversation` of the conversation with that
  reply); `reference_row` checks that the tokens before them are exactly the generation
  prompt's. Accuracy sits at the floor for small models and few steps; this moves smoothly
  (as DataDecide uses it), so two runs can be told apart before either solves anything.
- `general_loss`: a judge-free PROXY for general (chat) ability, NOT MT-Bench: the mean
  negative log-likelihood in nats per assistant token of held-out general chats never trained
  on (default: the built-in `general_test` corpus), tokenized by the training path with the
  training template and truncation. Per chat: its mean NLL over its assistant tokens; the metric
  `general_loss` is the mean over chats, `general_loss_tokens` the token-weighted mean. Lower is
  better. It measures how well the model predicts chat replies like those of its training
  distribution, not how good its own replies are.

Scoring: rows sorted by length and batched under a token budget, right padding (or left, for
the tests) with the attention mask and position ids from it, `torch.inference_mode`, the LM head
run only at positions that predict a target (`logits_to_keep`, where the model takes it), and
the log-softmax taken in float32 over those logits.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from core.settings import DEFAULT_TEMPLATE
from evals.spec import Progress
from trainers.data.builtin_sources import cached_builtin_specs
from trainers.data.chat_template import ChatTemplate, chat_template
from trainers.data.formatting import IGNORE, FormatError, tokenize_conversation
from trainers.data.records import Rejects
from trainers.data.source_spec import SourceSpec
from trainers.data.sources import read_records
from trainers.data.vicuna import TEMPLATE_NAME

NO_LIMIT = 10**9  # reference answers are never truncated


@dataclass(frozen=True)
class TargetScore:
    """Sum of ln p(token | everything before it) over a row's target tokens, and their count."""

    logprob: float
    tokens: int

    @property
    def mean(self) -> float:
        """Mean log-probability per target token (<= 0); NaN for a row without targets."""
        return self.logprob / self.tokens if self.tokens else math.nan

    @property
    def nll(self) -> float:
        """Mean negative log-likelihood per target token in nats (>= 0)."""
        return -self.mean


# ---- rows: input_ids + labels (IGNORE outside the target) ----------------------------------

def reference_row(tokenizer, conversation: Sequence[dict], reply: str,
                  template: str | ChatTemplate = DEFAULT_TEMPLATE) -> dict:
    """`{"input_ids", "labels"}`: the generation prompt of `conversation` (a list of messages
    ending with a user turn), then `reply` and the end-of-turn token, tokenized as training
    tokenizes that conversation with that reply; labels on the reply's tokens and the EOS only.

    Raises FormatError when the training path cannot label the reply exactly, or when the
    tokens before the reply differ from the generation prompt's own tokens (a tokenizer that
    merges across "ASSISTANT:" and the reply): then the score would not be conditioned on what
    the model sees when it generates.
    """
    chosen = chat_template(template, tokenizer)
    messages = [*conversation, {"role": "assistant", "content": reply}]
    row = tokenize_conversation(messages, tokenizer, max_len=NO_LIMIT, template=chosen)
    first = next(i for i, label in enumerate(row["labels"]) if label != IGNORE)
    prompt = chosen.generation_prompt(list(conversation))
    prompt_ids = tokenizer(prompt, add_special_tokens=chosen.add_special_tokens)["input_ids"]
    if list(prompt_ids) != row["input_ids"][:first]:
        raise FormatError("prompt_mismatch", "the reply's context is not the generation prompt")
    return {"input_ids": row["input_ids"], "labels": row["labels"]}


# ---- scoring -----------------------------------------------------------------------------------

def score_rows(model, rows: Sequence[Mapping], *, pad_id: int = 0, batch_size: int = 8,
               max_batch_tokens: int = 4096, padding_side: str = "right",
               progress: Progress | None = None) -> list[TargetScore]:
    """One `TargetScore` per row (`input_ids`, `labels`), in the rows' order.

    A label at position t is scored by the logits at t - 1 (a label at position 0 has no
    context and is not scored). Rows are sorted by length and batched under `batch_size` rows
    and `max_batch_tokens` padded tokens (a longer row goes alone): a batch's logits, rows x
    (positions with a target) x vocabulary, are what bounds memory. `progress(done, total)`
    hears each finished batch.
    """
    if padding_side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    lengths = [len(r["input_ids"]) for r in rows]
    for r, n in zip(rows, lengths, strict=True):
        if len(r["labels"]) != n:
            raise ValueError("input_ids and labels differ in length")
    order = sorted(range(len(rows)), key=lambda i: -lengths[i])  # longest first
    batches, current = [], []
    for i in order:
        # sorted longest first, so the batch's width is its first row's length
        if current and (len(current) >= batch_size
                        or (len(current) + 1) * lengths[current[0]] > max_batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    device = next(model.parameters()).device
    scores: list[TargetScore | None] = [None] * len(rows)
    with torch.inference_mode():
        for batch in batches:
            for i, score in zip(batch, _score_batch(model, [rows[i] for i in batch], pad_id,
                                                    padding_side, device), strict=True):
                scores[i] = score
            if progress is not None:
                progress(sum(s is not None for s in scores), len(rows))
    return scores  # type: ignore[return-value]


def _score_batch(model, rows, pad_id, padding_side, device) -> list[TargetScore]:
    width = max(len(r["input_ids"]) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, row in enumerate(rows):
        n = len(row["input_ids"])
        cols = slice(width - n, width) if padding_side == "left" else slice(0, n)
        input_ids[b, cols] = torch.tensor(row["input_ids"], dtype=torch.long)
        labels[b, cols] = torch.tensor(row["labels"], dtype=torch.long)
        mask[b, cols] = 1
    # positions count real tokens only, so a left-padded row sees the positions it has alone
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    targets = labels[:, 1:].to(device)  # the logits at position t predict token t + 1
    chosen = targets != IGNORE
    extra = {}
    if _keeps_logits(model):  # the LM head only where some row has a target: less memory
        keep = chosen.any(dim=0).nonzero().squeeze(-1)
        extra["logits_to_keep"] = keep
        chosen = chosen[:, keep]
        targets = targets[:, keep]
    logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                   position_ids=position_ids.to(device), use_cache=False, **extra).logits
    if not extra:
        logits = logits[:, :-1]
    picked = logits[chosen].float()  # (targets in the batch, vocabulary), float32
    logprobs = picked.log_softmax(-1).gather(-1, targets[chosen].unsqueeze(-1)).squeeze(-1)
    row_of = torch.arange(len(rows), device=device).unsqueeze(1).expand_as(targets)[chosen]
    sums = torch.zeros(len(rows), dtype=torch.float64, device=device)
    sums.index_add_(0, row_of, logprobs.double())
    counts = chosen.sum(dim=1)
    return [TargetScore(float(s), int(c)) for s, c in zip(sums.tolist(), counts.tolist(),
                                                         strict=True)]


def _keeps_logits(model) -> bool:
    """transformers' causal LMs take `logits_to_keep` (positions to run the LM head on)."""
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def pad_id_of(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def score_replies(model, tokenizer, conversations: Sequence[Sequence[dict]],
                  replies: Sequence[str], template: str = DEFAULT_TEMPLATE,
                  **kwargs) -> list[TargetScore | None]:
    """`ref_logprob` material: one score per (conversation, reply), None where `reference_row`
    raised FormatError (that reply cannot be scored exactly; the caller counts it).
    `template`: the chat template the model was trained with."""
    if len(conversations) != len(replies):
        raise ValueError(f"{len(replies)} replies for {len(conversations)} conversations")
    chosen = chat_template(template, tokenizer)  # once: "model" probes the template
    rows, where = [], []
    for i, (conversation, reply) in enumerate(zip(conversations, replies, strict=True)):
        try:
            rows.append(reference_row(tokenizer, conversation, reply, chosen))
            where.append(i)
        except FormatError:
            continue
    out: list[TargetScore | None] = [None] * len(replies)
    scored = score_rows(model, rows, pad_id=pad_id_of(tokenizer), **kwargs)
    for i, score in zip(where, scored, strict=True):
        out[i] = score
    return out


# ---- general_loss: the judge-free general proxy ------------------------------------------------

@dataclass(frozen=True)
class GeneralLoss:
    """The `general_loss` eval's identity for the result cache: change a field, rescore."""

    name: str = "general_loss"
    version: str = "1"
    max_len: int = 2048  # as training: tokenize_conversation's truncation
    overlong: str = "truncate"
    template: str = TEMPLATE_NAME

    def to_dict(self) -> dict:
        return asdict(self)


GENERAL_LOSS = GeneralLoss()


def default_general_data() -> Path:
    """The built-in `general_test` chats (seed 0, default sizes): disjoint from the built-in
    `general` training corpus of seed 0 with up to `DEFAULT_SIZES["general"]` chats (a smaller
    corpus of the same seed is a prefix of that one). Written into the cache once."""
    return Path(cached_builtin_specs()["general_test"].location)


def load_chats(location: str | Path | None = None, *, limit: int | None = None,
               rejects: Rejects | None = None) -> list[dict]:
    """Held-out chats as records (`id`, `source`, `messages`) through trainers.data.sources, so every
    format it reads works (ShareGPT, messages, ... local, s3://, gs:// or a HF id); left-out
    rows are counted in `rejects`. The first `limit` valid chats."""

    location = default_general_data() if location is None else location
    records = read_records(SourceSpec("general_loss", str(location)), rejects=rejects)
    return records[:limit] if limit is not None else records


def general_loss(model, tokenizer, chats: Sequence[dict], *, spec: GeneralLoss = GENERAL_LOSS,
                 rejects: Rejects | None = None, template: str = DEFAULT_TEMPLATE,
                 **kwargs) -> tuple[dict, list[dict], list[dict]]:
    """(metrics, items, records) of held-out chats, tokenized with the training `template`.
    A chat the training path rejects (FormatError) is counted in `rejects` under its reason
    and not scored."""
    rejects = rejects if rejects is not None else Rejects()
    chosen = chat_template(template, tokenizer)
    rows, kept = [], []
    for chat in chats:
        try:
            row = tokenize_conversation(chat["messages"], tokenizer, spec.max_len, spec.overlong,
                                        chosen)
        except FormatError as err:
            rejects.add(err.reason, f"general_loss#{chat['id']}")
            continue
        rows.append(row)
        kept.append(chat)
    scores = score_rows(model, rows, pad_id=pad_id_of(tokenizer), **kwargs)
    records = [{"id": chat["id"], "loss": s.nll, "tokens": s.tokens, "logprob": s.logprob,
                "truncated": row["truncated"]}
               for chat, row, s in zip(kept, rows, scores, strict=True)]
    items = [{"item": r["id"], "metric": "general_loss", "value": r["loss"]} for r in records]
    tokens = sum(s.tokens for s in scores)
    metrics = {
        "chats": len(chats), "scored": len(records),
        "general_loss": (sum(r["loss"] for r in records) / len(records)) if records else None,
        "general_loss_tokens": (-sum(s.logprob for s in scores) / tokens) if tokens else None,
    }
    return metrics, items, records
