"""The Ray Train worker function and the step logic it is made of (one loop for every backend).

`compute_loss` and `train_step` are plain functions (tests call them in-process without Ray).
`train_loop_per_worker(config)` is what `TorchTrainer` runs: rebuild the job from plain data,
shard rows by `position % world_size == rank`, train, checkpoint, save the final HF model.
`run_worker` is the per-worker core that both launchers share: `train_loop_per_worker` (Ray,
through `trainers.fit.fit_stage`) and `python -m trainers.train_stage` (one process or torchrun).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

from core.model import build_model, load_tokenizer
from core.settings import TrainSettings
from trainers.backends import all_reduce, build_backend, deepspeed_config
from trainers.data.collate import IGNORE, collate_packed, collate_padded, iter_worker_rows
from trainers.lora import with_lora
from trainers.metrics import StepMeter, mfu


def compute_loss(model, batch: dict) -> tuple[torch.Tensor, int]:
    """Sum of next-token losses over labelled (assistant) tokens, and how many there were.

    Logits are computed only where a label follows (boolean `logits_to_keep`), which skips the
    vocabulary projection for prompt and pad tokens. In packed rows a target whose position id
    is 0 starts a new sample, so it is never predicted from the previous sample's last token.
    """
    labels = batch["labels"]
    targets = labels[:, 1:]
    if "position_ids" in batch:
        targets = targets.masked_fill(batch["position_ids"][:, 1:] == 0, IGNORE)
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = targets != IGNORE
    n_tokens = int(keep.sum())
    if n_tokens == 0:
        keep[0, 0] = True  # keeps the graph whole (DDP/ZeRO need every rank to backward)
    inputs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask",
                                                      "position_ids")}
    call = model if isinstance(model, torch.nn.Module) else model.forward  # a backend
    logits = call(**inputs, logits_to_keep=keep, use_cache=False).logits
    flat_targets = torch.nn.functional.pad(targets, (0, 1), value=IGNORE)[keep]
    loss_sum = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), flat_targets,
                               ignore_index=IGNORE, reduction="sum")
    return loss_sum, n_tokens


@dataclass
class StepStats:
    loss: float  # mean over the global batch's labelled tokens
    label_tokens: int  # global
    real_tokens: int  # global non-pad input tokens
    padded_tokens: int  # global positions computed (real + pad)
    grad_norm: float
    lr: float


def train_step(backend, micro_batches: list[dict]) -> StepStats:
    """One optimizer step over this worker's micro-batches of the global batch.

    The loss is the sum of token losses over the whole global batch divided by its number of
    labelled tokens (all-reduced over workers first), as FastChat/HF average it, so batch 2 x
    accumulation 1 equals batch 1 x accumulation 2. Backends average gradients over workers,
    hence the factor world_size.
    """
    local = [float(_label_count(mb)) for mb in micro_batches]
    (global_labels,) = all_reduce([sum(local)], backend.device)
    scale = backend.world_size / max(global_labels, 1.0)
    lr = backend.lr()  # the rate this step uses, before the scheduler advances
    loss_total = 0.0
    for i, mb in enumerate(micro_batches):
        mb = {k: v.to(backend.device) for k, v in mb.items()}
        with backend.accumulating(last=i == len(micro_batches) - 1):
            loss_sum, _ = compute_loss(backend, mb)
            backend.backward(loss_sum * scale)
        loss_total += float(loss_sum.detach())
    grad_norm = backend.step()
    real = sum(int(mb["real_tokens"]) for mb in micro_batches)
    padded = sum(int(mb["input_ids"].numel()) for mb in micro_batches)
    loss_sum_g, real_g, padded_g = all_reduce([loss_total, real, padded], backend.device)
    return StepStats(loss=loss_sum_g / max(global_labels, 1.0), label_tokens=int(global_labels),
                     real_tokens=int(real_g), padded_tokens=int(padded_g),
                     grad_norm=grad_norm, lr=lr)


def _label_count(mb: dict) -> int:
    targets = mb["labels"][:, 1:]
    if "position_ids" in mb:
        targets = targets.masked_fill(mb["position_ids"][:, 1:] == 0, IGNORE)
    return int((targets != IGNORE).sum())


# ---- steps over this worker's rows ------------------------------------------------------------

@dataclass(frozen=True)
class StepSchedule:
    """How an epoch's positions map to optimizer steps: step s of an epoch takes positions
    [s x global_batch, (s+1) x global_batch) over all workers, whatever the worker count."""

    rows_per_epoch: int
    epochs: int
    global_batch: int
    micro_batch: int
    grad_accum: int

    @classmethod
    def create(cls, settings: TrainSettings, rows_per_epoch: int, workers: int) -> StepSchedule:
        if rows_per_epoch < 1:
            raise ValueError(f"rows_per_epoch={rows_per_epoch}: a stage needs at least one row")
        return cls(rows_per_epoch, settings.epochs, settings.global_batch, settings.micro_batch,
                   settings.grad_accum(workers))

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.rows_per_epoch // self.global_batch)  # the last batch may be partial

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def advance(self, epoch: int, step_in_epoch: int) -> tuple[int, int]:
        """(epoch, next position) after a step."""
        nxt = (step_in_epoch + 1) * self.global_batch
        return (epoch + 1, 0) if nxt >= self.rows_per_epoch else (epoch, nxt)


def iter_steps(rows, plan: StepSchedule, start: tuple[int, int] = (0, 0)):
    """(epoch, step in epoch, this worker's rows of that step) for every remaining step.

    Every worker yields every step, even one where it holds no rows (the last, partial batch),
    because all of them must join each step's collectives. `rows` is this worker's rows in
    (epoch, position) order, already past `start`.
    """
    rows = iter(rows)
    pending = next(rows, None)
    epoch, position = start
    last = (epoch, position - 1)
    while epoch < plan.epochs:
        step = position // plan.global_batch
        end = min((step + 1) * plan.global_batch, plan.rows_per_epoch)
        mine = []
        while pending is not None and (pending["epoch"], pending["position"]) < (epoch, end):
            key = (pending["epoch"], pending["position"])
            if key <= last:
                raise ValueError(f"dataset row {key} arrived after {last}: rows must come in "
                                 "(epoch, position) order (preserve_order=True)")
            last = key
            mine.append(pending)
            pending = next(rows, None)
        yield epoch, step, mine
        epoch, position = plan.advance(epoch, step)
    if pending is not None:
        raise ValueError(f"dataset row (epoch {pending['epoch']}, position {pending['position']}) "
                         f"lies outside the plan: {plan.epochs} epochs of "
                         f"{plan.rows_per_epoch} rows")


def collate_micro_batches(rows: list[dict], plan: StepSchedule, pad_id: int,
                          packing: bool) -> list[dict]:
    """Exactly grad_accum micro-batches of up to micro_batch rows; an empty one is a dummy
    with no labels (0 loss) so that every worker runs the same number of backward passes."""
    out = []
    for i in range(plan.grad_accum):
        group = rows[i * plan.micro_batch:(i + 1) * plan.micro_batch]
        real = sum(len(row["input_ids"]) for row in group)
        if not group:
            group = [{"input_ids": [pad_id, pad_id], "labels": [IGNORE, IGNORE]}]
        batch = collate_packed(group) if packing else collate_padded(group, pad_id)
        out.append({**batch, "real_tokens": torch.tensor(real)})
    return out


@dataclass(frozen=True)
class WorkerJob:
    """What one stage's workers need, rebuilt from the plain dict Ray carries."""

    model: str  # preset name, HF id or the parent stage's checkpoint dir
    tokenizer: str
    settings: TrainSettings
    rows_per_epoch: int
    use_gpu: bool = False
    model_params: int = 0  # for MFU; 0: counted from the model

    def to_dict(self) -> dict:
        return {"model": self.model, "tokenizer": self.tokenizer,
                "settings": self.settings.to_dict(), "rows_per_epoch": self.rows_per_epoch,
                "use_gpu": self.use_gpu, "model_params": self.model_params}

    @classmethod
    def from_dict(cls, data: dict) -> WorkerJob:
        return cls(**{**data, "settings": TrainSettings.from_dict(data["settings"])})


@dataclass
class TrainState:
    """Progress that a mid-stage checkpoint carries: where in the data and the curves so far."""

    step: int = 0
    epoch: int = 0
    next_position: int = 0  # first position of `epoch` not yet consumed
    tokens_seen: int = 0
    label_tokens_seen: int = 0
    train_s: float = 0.0
    loss_curve: list = field(default_factory=list)
    grad_norm_curve: list = field(default_factory=list)
    resumed_from: list = field(default_factory=list)  # the step of each restart's checkpoint
    # Where each (re)start ran: {"from_step", "nodes" (every rank's, deduplicated),
    # "started_at"} (unix s); a stage that was never interrupted has one.
    placements: list = field(default_factory=list)
    done: bool = False

    def to_dict(self) -> dict:
        return dict(self.__dict__, last_consumed=[self.epoch, self.next_position - 1])

    @classmethod
    def from_dict(cls, data: dict) -> TrainState:
        return cls(**{k: v for k, v in data.items() if k != "last_consumed"})


def train_loop_per_worker(config: dict) -> None:
    """What Ray Train runs on each worker: the shared core (`run_worker`) with Ray's I/O."""
    job = WorkerJob.from_dict(config)
    import ray.train  # lazy: light command (train_stage runs without Ray)

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device() if job.use_gpu else torch.device("cpu")
    run_worker(job, RayIO(rank, world), rank=rank, world=world, device=device)


def run_worker(job: WorkerJob, io, *, rank: int, world: int, device) -> dict:
    """One worker's whole stage, whatever launched it (Ray Train or trainers.train_stage):
    build tokenizer, model and backend, restore, train every remaining step, write the final HF
    checkpoint with train_state.json and train_summary.json. `io` is the launcher's part:
    `node()` (where this worker runs: a Ray node id, or the host name),
    `restore(backend) -> TrainState`, `rows(state)` (this worker's rows past the state's
    position, in (epoch, position) order), `report(metrics)`, `checkpoint(backend, state,
    metrics)`, `final_dir()` (a context manager giving the folder to write) and
    `final(directory, metrics)`, `finished_again(state)`. Returns the run summary."""
    settings = job.settings
    torch.manual_seed(settings.seed + rank)
    plan = StepSchedule.create(settings, job.rows_per_epoch, world)
    tokenizer = load_tokenizer(job.tokenizer)
    zero_init = _zero3_init_context(settings, plan, job.use_gpu)  # noqa: F841 (kept alive)
    model = with_lora(build_model(job.model, seed=settings.seed), settings)
    params = job.model_params or sum(getattr(p, "ds_numel", p.numel())
                                     for p in model.parameters())
    backend = build_backend(model, settings, total_steps=plan.total_steps,
                            grad_accum=plan.grad_accum, use_gpu=job.use_gpu, device=device)
    state = io.restore(backend)
    if state.done:  # a re-run of a finished stage: hand back its final checkpoint
        io.finished_again(state)
        return summary(state)
    state.placements.append({"from_step": state.step, "nodes": gather_nodes(io.node(), world),
                             "started_at": round(time.time(), 3)})
    meter = StepMeter()
    start = (state.epoch, state.next_position)
    for epoch, step_in_epoch, rows in iter_steps(io.rows(state), plan, start=start):
        batches = collate_micro_batches(rows, plan, tokenizer.pad_token_id, settings.packing)
        meter.start()
        stats = train_step(backend, batches)
        seconds = meter.stop()
        state.step += 1
        state.epoch, state.next_position = plan.advance(epoch, step_in_epoch)
        state.tokens_seen += stats.real_tokens
        state.label_tokens_seen += stats.label_tokens
        state.train_s += seconds
        state.loss_curve.append(round(stats.loss, 6))
        state.grad_norm_curve.append(round(stats.grad_norm, 6))
        metrics = _step_metrics(stats, state, epoch, seconds, params, world, job.use_gpu, device)
        metrics["total_steps"] = plan.total_steps  # the sweep's console shows step/total
        if settings.checkpoint_every_steps and state.step % settings.checkpoint_every_steps == 0 \
                and state.step < plan.total_steps:
            io.checkpoint(backend, state, metrics)
        else:
            io.report(metrics)
    return _write_final(backend, state, tokenizer, plan, rank, io)


def _write_final(backend, state: TrainState, tokenizer, plan: StepSchedule, rank: int, io) -> dict:
    """Rank 0 writes the HF model (safetensors, config, tokenizer) and the run summary."""
    state.done = True
    metrics = {**summary(state), "total_steps": plan.total_steps, "final": True,
               "precision": backend.precision_mode, "finished_at": round(time.time(), 3)}
    with io.final_dir() as directory:
        directory = Path(directory)
        backend.save_hf(directory, tokenizer)  # a collective under ZeRO-3
        if rank == 0:
            (directory / "train_state.json").write_text(json.dumps(state.to_dict()))
            (directory / "train_summary.json").write_text(json.dumps(metrics, indent=1))
        io.final(directory, metrics)
    return metrics


def _zero3_init_context(settings: TrainSettings, plan: StepSchedule, use_gpu: bool):
    """On GPUs under ZeRO-3, keep an HfDeepSpeedConfig alive while the model loads so that
    `from_pretrained` partitions weights as it reads them (zero.Init): a 33B model never sits
    whole in one process. Written for GPUs and not run here (no GPU); CPU runs load normally."""
    if not (use_gpu and settings.resolved_backend(use_gpu) == "deepspeed"
            and settings.zero_stage == 3):
        return None
    from transformers.integrations import HfDeepSpeedConfig  # lazy: optional dependency (DeepSpeed)


    config = deepspeed_config(settings, grad_accum=plan.grad_accum,
                              precision=settings.resolved_precision(use_gpu))
    return HfDeepSpeedConfig(config)


def _step_metrics(stats: StepStats, state: TrainState, epoch: int, seconds: float, params: int,
                  world: int, use_gpu: bool, device) -> dict:
    tokens_per_s = stats.real_tokens / seconds if seconds > 0 else 0.0
    pad = 1 - stats.real_tokens / stats.padded_tokens if stats.padded_tokens else 0.0
    metrics = {"loss": stats.loss, "lr": stats.lr, "grad_norm": stats.grad_norm,
               "tokens_per_s": tokens_per_s, "padding_fraction": pad, "epoch": epoch,
               "step": state.step, "tokens_seen": state.tokens_seen,
               "label_tokens": stats.label_tokens}
    utilisation = mfu(params, tokens_per_s, world, device) if use_gpu else None
    if utilisation is not None:  # a number or absent (CPU, unknown GPU), never a string
        metrics["mfu"] = utilisation
    return metrics


class RayIO:
    """Ray Train's side of `run_worker`: checkpoints go through `ray.train.report`, which merges
    every rank's files into one checkpoint folder; rows come from the worker's dataset shard."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world = rank, world

    def node(self) -> str:
        """The Ray node id: on a cluster, which machine this worker ran on."""
        import ray  # lazy: light command (train_stage runs without Ray)

        return ray.get_runtime_context().get_node_id()

    def restore(self, backend) -> TrainState:
        import ray.train  # lazy: light command (train_stage runs without Ray)

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return TrainState()
        with checkpoint.as_directory() as directory:
            return restore_state(backend, Path(directory))

    def rows(self, state: TrainState):
        import ray.train  # lazy: light command (train_stage runs without Ray)

        shard = ray.train.get_dataset_shard("train")
        return iter_worker_rows(shard, self.rank, self.world,
                                start_after=(state.epoch, state.next_position - 1))

    def report(self, metrics: dict) -> None:
        import ray.train  # lazy: light command (train_stage runs without Ray)

        ray.train.report(metrics)

    def checkpoint(self, backend, state: TrainState, metrics: dict) -> None:
        """Every rank writes its part (DeepSpeed shards, RNG); Ray merges them into one folder."""
        import ray.train  # lazy: light command (train_stage runs without Ray)

        with tempfile.TemporaryDirectory(prefix=f"ckpt-r{self.rank}-") as tmp:
            save_state(backend, state, Path(tmp), self.rank)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                             checkpoint_dir_name=f"step_{state.step:07d}")

    def final_dir(self):
        return tempfile.TemporaryDirectory(prefix=f"final-r{self.rank}-")

    def final(self, directory: Path, metrics: dict) -> None:
        import ray.train  # lazy: light command (train_stage runs without Ray)

        if self.rank == 0:
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(directory),
                             checkpoint_dir_name="final")
        else:
            ray.train.report(metrics)

    def finished_again(self, state: TrainState) -> None:
        import ray.train  # lazy: light command (train_stage runs without Ray)

        checkpoint = ray.train.get_checkpoint() if self.rank == 0 else None
        ray.train.report({**summary(state), "final": True}, checkpoint=checkpoint)


def restore_state(backend, directory: Path) -> TrainState:
    """The TrainState of a checkpoint folder, and the backend's weights, optimizer and RNG from
    it unless the stage had finished (a final folder holds HF weights only)."""
    state = TrainState.from_dict(json.loads((directory / "train_state.json").read_text()))
    if not state.done:
        backend.load_checkpoint(directory)
        state.resumed_from.append(state.step)
    return state


def save_state(backend, state: TrainState, directory: Path, rank: int) -> None:
    """A mid-stage checkpoint: the backend's files (every rank's) and rank 0's train_state.json."""
    backend.save_checkpoint(directory)
    if rank == 0:
        (directory / "train_state.json").write_text(json.dumps(state.to_dict()))


def summary(state: TrainState) -> dict:
    return {"steps": state.step, "tokens_seen": state.tokens_seen,
            "label_tokens_seen": state.label_tokens_seen, "train_s": round(state.train_s, 3),
            "tokens_per_s": state.tokens_seen / state.train_s if state.train_s else 0.0,
            "final_loss": state.loss_curve[-1] if state.loss_curve else None,
            "loss_curve": state.loss_curve, "grad_norm_curve": state.grad_norm_curve,
            "resumed_from": state.resumed_from, "placements": state.placements}


def gather_nodes(node: str, world: int) -> list[str]:
    """The distinct nodes of every rank (`node` is this rank's), the same list on each rank."""
    if world == 1 or not dist.is_initialized():
        return [node]
    nodes: list = [None] * world
    dist.all_gather_object(nodes, node)
    return sorted(set(nodes))
