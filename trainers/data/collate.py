"""A train worker's rows of a stage dataset (`iter_worker_rows`: position % world_size == rank)
and its micro-batches (`iter_micro_batches`): padded to the longest row, or packed without
padding. No Ray here: the training core runs without it (trainers/train_stage.py, the GPU check).

Rows are `{"input_ids", "labels"}` (lists, numpy arrays or tensors) as trainers/data/formatting.py
makes them; a columnar batch (Ray Data's `iter_batches`) is accepted too, so both functions also
work as `collate_fn`. Train a packed batch with `model(**batch, use_cache=False)` (see below).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

import numpy as np
import torch

IGNORE = -100


def _rows(rows) -> list[dict]:
    if isinstance(rows, Mapping):  # columns -> rows
        return [{"input_ids": a, "labels": b} for a, b in zip(rows["input_ids"], rows["labels"])]
    return list(rows)


def _long(values) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.long).reshape(-1)


def collate_padded(rows, pad_id: int, label_pad: int = IGNORE) -> dict[str, torch.Tensor]:
    """`input_ids`, `attention_mask`, `labels` [B, T], right-padded to the longest row.

    T is the longest row of this micro-batch, never max_len: padding to max_len would spend most
    of the compute on pad tokens for short chats (see `padding_fraction`).
    """
    rows = _rows(rows)
    if not rows:
        raise ValueError("collate_padded needs at least one row")
    longest = max(len(row["input_ids"]) for row in rows)
    input_ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), longest), label_pad, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, row in enumerate(rows):
        ids, lab = _long(row["input_ids"]), _long(row["labels"])
        if len(ids) != len(lab):
            raise ValueError(f"row {i}: {len(ids)} input_ids but {len(lab)} labels")
        input_ids[i, : len(ids)] = ids
        labels[i, : len(lab)] = lab
        attention_mask[i, : len(ids)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def collate_packed(
    rows, block_mask: bool = False, mask_dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """All rows in one `[1, T]` row: `input_ids`, `labels`, `position_ids` (restarting at 0 per
    sample) and, with `block_mask`, a 4-D block-diagonal causal `attention_mask` [1, 1, T, T].

    Each sample's first label is -100: HF shifts labels left by one, so the last token of one
    sample would otherwise be trained to predict the first token of the next.

    Cross-sample attention, as measured with transformers 5.24 on CPU (tests/trainers/data/test_collate.py):
    - No 2-D attention mask, sdpa/eager/flex: transformers infers sample boundaries from
      `position_ids` (where they do not increase by 1) and blocks attention between samples ONLY
      when no KV cache is built. Llama's `use_cache` defaults to the config's `True`, and then
      the whole row attends causally ACROSS samples, silently: pass `use_cache=False` when
      training on packed batches (tested, CPU sdpa and eager).
    - flash-attention 2/3 derives varlen `cu_seqlens` from the same `position_ids` whatever
      `use_cache` is (read in the 5.24 source; not run here: no GPU, no flash-attn).
    - `block_mask=True` adds an explicit additive mask (0 / dtype min, in `mask_dtype`, which
      must match the model's dtype for sdpa) that blocks it for eager and sdpa whatever
      `use_cache` is. It costs T x T memory and flash-attention rejects it: use it only on CPU or
      for short packs.
    """
    rows = _rows(rows)
    if not rows:
        raise ValueError("collate_packed needs at least one row")
    ids, labels, positions, segments = [], [], [], []
    for i, row in enumerate(rows):
        row_ids, row_labels = _long(row["input_ids"]), _long(row["labels"]).clone()
        if len(row_ids) != len(row_labels) or len(row_ids) == 0:
            raise ValueError(f"row {i}: {len(row_ids)} input_ids, {len(row_labels)} labels")
        row_labels[0] = IGNORE
        ids.append(row_ids)
        labels.append(row_labels)
        positions.append(torch.arange(len(row_ids)))
        segments.append(torch.full((len(row_ids),), i))
    batch = {
        "input_ids": torch.cat(ids)[None],
        "labels": torch.cat(labels)[None],
        "position_ids": torch.cat(positions)[None],
    }
    if block_mask:
        segment = torch.cat(segments)
        n = len(segment)
        allowed = (segment[:, None] == segment[None, :]) & torch.ones(n, n, dtype=torch.bool).tril()
        mask = torch.zeros(n, n, dtype=mask_dtype).masked_fill(~allowed, torch.finfo(mask_dtype).min)
        batch["attention_mask"] = mask[None, None]
    return batch


def group_for_packing(lengths: Iterable[int], max_tokens: int) -> list[list[int]]:
    """Row indices grouped in order into packs of at most `max_tokens` tokens (a longer row gets a
    pack of its own). Order is kept, so a resumed worker can skip exactly what it consumed."""
    packs, current, used = [], [], 0
    for index, length in enumerate(lengths):
        if current and used + length > max_tokens:
            packs.append(current)
            current, used = [], 0
        current.append(index)
        used += length
    return packs + ([current] if current else [])


def padding_fraction(batch: Mapping[str, torch.Tensor]) -> float:
    """Pad tokens / all tokens of a collated batch (0.0 for a packed batch: it has no padding)."""
    mask = batch.get("attention_mask")
    if mask is None or mask.dim() != 2:
        return 0.0
    return 1.0 - float(mask.sum()) / mask.numel()


def count_label_tokens(batch: Mapping[str, torch.Tensor]) -> int:
    """Tokens that carry loss after HF's one-position shift (the loss is their mean)."""
    return int((batch["labels"][..., 1:] != IGNORE).sum())


def iter_worker_rows(dataset_or_shard, rank: int, world_size: int,
                     start_after: tuple[int, int] | None = None,
                     batch_size: int = 256) -> Iterator[dict]:
    """This worker's rows (position % world_size == rank) in (epoch, position) order; a resumed
    worker passes the (epoch, position) of its last consumed row as `start_after`."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    for batch in dataset_or_shard.iter_batches(batch_size=batch_size, batch_format="numpy"):
        epochs, positions = batch["epoch"], batch["position"]
        for j in range(len(positions)):
            epoch, position = int(epochs[j]), int(positions[j])
            if position % world_size != rank:
                continue
            if start_after is not None and (epoch, position) <= tuple(start_after):
                continue
            yield {"epoch": epoch, "position": position, "source": str(batch["source"][j]),
                   "id": str(batch["id"][j]), "n_tokens": int(batch["n_tokens"][j]),
                   # copies: Arrow hands out read-only views, which torch warns about
                   "input_ids": np.array(batch["input_ids"][j]),
                   "labels": np.array(batch["labels"][j])}


def iter_micro_batches(rows: Iterable[dict], micro_batch: int,
                       collate: Callable[[list[dict]], object]) -> Iterator[object]:
    """Consecutive groups of `micro_batch` rows, collated; the last group may be shorter."""
    if micro_batch < 1:
        raise ValueError(f"micro_batch must be >= 1, got {micro_batch}")
    group: list[dict] = []
    for row in rows:
        group.append(row)
        if len(group) == micro_batch:
            yield collate(group)
            group = []
    if group:
        yield collate(group)
