"""Training reference pieces several tests share: rows in the pipeline's shape, a stage dataset,
the same steps in plain torch, and a Ray Train fit of them."""

from __future__ import annotations

from pathlib import Path

import torch

from core.settings import TrainSettings
from trainers.backends import TorchBackend
from trainers.data.collate import IGNORE
from trainers.loop import StepSchedule, collate_micro_batches, iter_steps, train_step


def make_rows(n: int, seed: int = 0, lo: int = 6, hi: int = 20, vocab: int = 1000) -> list[dict]:
    """Rows in the pipeline's shape: a prompt (unlabelled) then an answer (labelled)."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        length = int(torch.randint(lo, hi, (1,), generator=g))
        ids = torch.randint(5, vocab, (length,), generator=g).tolist()
        cut = length // 2
        rows.append({"epoch": 0, "position": i, "input_ids": ids,
                     "labels": [IGNORE] * cut + ids[cut:], "n_tokens": length})
    return rows


def stage_rows(n: int, epochs: int, seed: int = 0) -> list[dict]:
    """Rows in the pipeline's shape, laid out per epoch in a seeded order."""
    base = make_rows(n, seed=seed, lo=8, hi=40)
    rows = []
    for epoch in range(epochs):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        for position, index in enumerate(order):
            rows.append({**base[index], "epoch": epoch, "position": position, "source": "toy",
                         "id": f"toy-{index}"})
    return rows


def stage_dataset(n: int, epochs: int, seed: int = 0):
    import ray.data

    return ray.data.from_items(stage_rows(n, epochs, seed))


def reference_run(rows: list[dict], settings: TrainSettings):
    """The same stage in this process, one worker, plain torch: (loss curve, grad norms, model)."""
    from core.model import build_model, load_tokenizer

    plan = StepSchedule.create(settings, len(rows) // settings.epochs, 1)
    backend = TorchBackend(build_model("tiny_llama", seed=settings.seed), settings,
                           total_steps=plan.total_steps, device="cpu", precision="fp32")
    pad = load_tokenizer("tiny_llama").pad_token_id
    losses, norms = [], []
    for _, _, step_rows in iter_steps(rows, plan):
        stats = train_step(backend, collate_micro_batches(step_rows, plan, pad, False))
        losses.append(stats.loss)
        norms.append(stats.grad_norm)
    return losses, norms, backend.module


SETTINGS = TrainSettings(epochs=1, lr=1e-3, warmup_ratio=0.0, global_batch=4, micro_batch=1,
                         seed=0)


def fit(ds, tmp_path: Path, name: str, settings: TrainSettings, **kw):
    from trainers.fit import FitConfig, fit_stage

    cfg = FitConfig(model="tiny_llama", tokenizer="tiny_llama", dataset=ds, settings=settings,
                    workers=2, storage_path=str(tmp_path / "ray"), name=name, **kw)
    return fit_stage(cfg)
