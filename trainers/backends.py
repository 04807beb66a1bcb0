"""Training backends behind one interface: plain/DDP torch and DeepSpeed ZeRO-2/3.

The loop (trainers/loop.py) only calls `forward`, `accumulating`, `backward`, `step`, `lr`,
`save_checkpoint`/`load_checkpoint` and `save_hf`, so it never branches on the backend.
`TorchBackend` runs in-process without any process group (tests) or under DDP (gloo on CPU,
nccl on GPU). `DeepSpeedBackend` builds its config from TrainSettings; it runs on CPU here.

Precision: weights are never trained in pure low precision (AdamW steps of lr 2e-5 round away
in bf16). "bf16" keeps fp32 master weights: TorchBackend runs the forward under
`torch.autocast(<device type>, torch.bfloat16)`, on CPU as on CUDA; DeepSpeed's bf16 mode
computes with bf16 weights and steps fp32 master copies held by its ZeRO optimizer. Either way
the checkpoint written is the fp32 master weights. A bf16 request on a CPU without native bf16
instructions is refused (`check_precision`).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import random
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from transformers import (
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

from core.settings import SettingsError, TrainSettings, precision_mode
from trainers.lora import merged

# /proc/cpuinfo flags of x86 CPUs that compute bf16 natively (AVX512-BF16: Cooper Lake, Zen 4
# and later; AMX-BF16: Sapphire Rapids and later). Without them oneDNN emulates bf16 matmuls.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether this CPU has native bf16 instructions (a flag in NATIVE_BF16_FLAGS); False when
    /proc/cpuinfo cannot be read (not Linux). Cached: the flags never change while running."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags.update(value.split())
    return bool(flags & NATIVE_BF16_FLAGS)


def check_precision(precision: str, device) -> None:
    """Refuse bf16 on a CPU without native bf16: emulated bf16 is several times slower than
    fp32 there and buys nothing (the weights stay fp32 either way)."""
    if precision == "bf16" and torch.device(device).type == "cpu" and not cpu_has_native_bf16():
        raise SettingsError(
            "TrainSettings.precision='bf16' on CPU: this CPU has no native bf16 instructions "
            f"(none of {sorted(NATIVE_BF16_FLAGS)} in /proc/cpuinfo), so bf16 would be emulated, "
            "several times slower than fp32 for nothing; use precision=\"fp32\" or \"auto\" "
            "(fp32 on CPUs, bf16 on GPUs)")


def dist_world() -> tuple[int, int]:
    """(rank, world_size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce(values: list[float], device, op: str = "sum") -> list[float]:
    """Sum (or max) plain numbers over all workers; a no-op without a process group."""
    _, world = dist_world()
    if world == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
    return t.tolist()


def make_optimizer(model: torch.nn.Module, settings: TrainSettings) -> torch.optim.Optimizer:
    """AdamW; weight decay (0 in the paper) on matrices only, as HF Trainer does."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": settings.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=settings.learning_rate,
                             betas=settings.adam_betas, eps=settings.adam_eps)


def warmup_steps(settings: TrainSettings, total_steps: int) -> int:
    return math.ceil(settings.warmup_ratio * total_steps)  # HF Trainer rounds up too


def make_scheduler(optimizer, settings: TrainSettings, total_steps: int):
    """Linear warmup then cosine (or linear) decay to 0, stepped once per optimizer step."""
    warm = warmup_steps(settings, total_steps)
    if settings.lr_schedule == "cosine":
        return get_cosine_schedule_with_warmup(optimizer, warm, total_steps)
    if settings.lr_schedule == "linear":
        return get_linear_schedule_with_warmup(optimizer, warm, total_steps)
    return get_constant_schedule_with_warmup(optimizer, warm)


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_rng(directory: Path, rank: int) -> None:
    torch.save(_rng_state(), directory / f"rng_rank{rank}.pt")


def load_rng(directory: Path, rank: int) -> None:
    path = directory / f"rng_rank{rank}.pt"
    if path.exists():  # a resume on a different worker count has no file for new ranks
        _set_rng_state(torch.load(path, weights_only=False))


class TorchBackend:
    """Plain torch in one process, or DDP when a process group exists (Ray sets one up)."""

    name = "ddp"

    def __init__(self, model, settings: TrainSettings, *, total_steps: int, device,
                 precision: str):
        self.settings = settings
        self.device = torch.device(device)
        self.rank, self.world_size = dist_world()
        check_precision(precision, self.device)
        self.precision = precision
        # bf16 = fp32 master weights (what AdamW updates and what is saved) with the forward
        # under autocast, on CPU as on CUDA. Never pure bf16 weights: with those, most AdamW
        # updates at lr 2e-5 are smaller than half a bf16 ulp and vanish (measured on the tiny
        # model: 3 steps moved 29% of the non-embedding weights, against 100% in fp32 and
        # under autocast; tests/trainers/test_learning_signal.py).
        self._autocast = precision == "bf16"
        self.precision_mode = precision_mode(precision, self.name)
        self.module = model.to(device=self.device, dtype=torch.float32)
        self.optimizer = make_optimizer(self.module, settings)
        self.scheduler = make_scheduler(self.optimizer, settings, total_steps)
        self.model = self.module
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.module, device_ids=ids)

    def forward(self, **inputs):
        ctx = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
               if self._autocast else contextlib.nullcontext())
        with ctx:
            return self.model(**inputs)

    def accumulating(self, last: bool):
        """DDP all-reduces gradients only on the last micro-batch of an optimizer step."""
        if self.world_size > 1 and not last:
            return self.model.no_sync()
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def step(self) -> float:
        norm = torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.settings.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.zero_grad()
        return float(norm)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict_for_save(self) -> dict | None:
        """The full model state dict on rank 0 (None elsewhere)."""
        return self.module.state_dict() if self.rank == 0 else None

    def save_checkpoint(self, directory: Path) -> None:
        if self.rank == 0:
            torch.save({"model": self.module.state_dict(),
                        "optimizer": self.optimizer.state_dict(),
                        "scheduler": self.scheduler.state_dict()}, directory / "torch_state.pt")
        save_rng(directory, self.rank)

    def load_checkpoint(self, directory: Path) -> None:
        state = torch.load(directory / "torch_state.pt", map_location=self.device,
                           weights_only=False)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        load_rng(directory, self.rank)

    def save_hf(self, directory: Path, tokenizer) -> None:
        if self.rank == 0:
            merged(self.module).save_pretrained(directory)  # a LoRA proxy: adapters merged
            tokenizer.save_pretrained(directory)


def deepspeed_config(settings: TrainSettings, *, grad_accum: int, precision: str) -> dict:
    """DeepSpeed config from the settings. The optimizer and scheduler are client objects
    (torch AdamW, HF schedule): no FusedAdam/CPUAdam to compile, same math as DDP."""
    zero: dict = {
        "stage": settings.zero_stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": 5e7,
    }
    if settings.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    if settings.offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
        if settings.zero_stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": torch.cuda.is_available()}
    return {
        "train_micro_batch_size_per_gpu": settings.micro_batch,
        "gradient_accumulation_steps": grad_accum,
        "gradient_clipping": settings.max_grad_norm,
        "bf16": {"enabled": precision == "bf16"},
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,  # torch AdamW as the client optimizer
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


class DeepSpeedBackend:
    """DeepSpeed ZeRO-2/3 engine; DeepSpeed reuses the process group Ray Train set up."""

    name = "deepspeed"

    def __init__(self, model, settings: TrainSettings, *, total_steps: int, grad_accum: int,
                 device, precision: str):
        import deepspeed  # lazy: optional dependency (DeepSpeed)

        self.settings = settings
        self.device = torch.device(device)
        self.rank, self.world_size = dist_world()
        check_precision(precision, self.device)
        # DeepSpeed's bf16 casts the module to bf16 for compute, but its ZeRO optimizer steps
        # fp32 master copies (never pure bf16 training); those masters are what gets saved.
        self.bf16 = precision == "bf16"
        self.precision_mode = precision_mode(precision, self.name)
        self.config = deepspeed_config(settings, grad_accum=grad_accum, precision=precision)
        optimizer = make_optimizer(model, settings)
        scheduler = make_scheduler(optimizer, settings, total_steps)
        self.engine, self.optimizer, _, self.scheduler = deepspeed.initialize(
            model=model, optimizer=optimizer, lr_scheduler=scheduler, config=self.config,
            dist_init_required=False)
        self.model = self.engine
        self.module = self.engine.module
        self._last = True

    def forward(self, **inputs):
        return self.engine(**inputs)

    def accumulating(self, last: bool):
        self._last = last
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor) -> None:
        # The loop already divides by the global token count; DeepSpeed must not divide again
        # by the accumulation steps.
        self.engine.backward(loss, scale_wrt_gas=False)
        if not self._last:
            # The engine counts micro-steps in step(): it must be called after every backward
            # and only updates the weights on the accumulation boundary.
            self.engine.step()

    def step(self) -> float:
        if not self.engine.is_gradient_accumulation_boundary():
            raise RuntimeError("DeepSpeed micro-step count out of line with the loop's "
                               f"{self.config['gradient_accumulation_steps']} micro-batches")
        self.engine.step()  # clips, steps optimizer and scheduler, zeroes grads
        norm = self.engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def zero_grad(self) -> None:
        self.engine.zero_grad()

    def lr(self) -> float:
        return float(self.engine.get_lr()[0])

    def state_dict_for_save(self) -> dict | None:
        """Full fp32 weights on rank 0 (ZeRO-3 gathers shards layer by layer); a collective.
        Under bf16 the module holds bf16 copies: the optimizer's fp32 masters are gathered."""
        if self.bf16:
            state = self._fp32_master_state_dict()
        elif self.settings.zero_stage == 3:
            state = self.engine._zero3_consolidated_16bit_state_dict()
        else:
            state = self.module.state_dict()
        return state if self.rank == 0 else None

    def _fp32_master_state_dict(self) -> dict:
        """Every parameter's fp32 master (gathered on all ranks in the same order: each gather
        is a collective), buffers as the module holds them; tied weights share one tensor."""
        from deepspeed.utils import (
            safe_get_full_fp32_param,  # lazy: optional dependency (DeepSpeed)
        )

        state, gathered = {}, {}
        for name, param in self.module.named_parameters(remove_duplicate=False):
            if id(param) not in gathered:
                full = safe_get_full_fp32_param(param)
                if full is None:
                    raise RuntimeError(f"DeepSpeed holds no fp32 master for {name}")
                gathered[id(param)] = full.detach().to("cpu", torch.float32).clone()
            state[name] = gathered[id(param)]
        for prefix, module in self.module.named_modules():
            for name, buf in module.named_buffers(recurse=False):
                if buf is not None and name not in module._non_persistent_buffers_set:
                    state[f"{prefix}.{name}" if prefix else name] = buf.detach().cpu().clone()
        return state

    def save_checkpoint(self, directory: Path) -> None:
        self.engine.save_checkpoint(str(directory), tag="zero")
        save_rng(directory, self.rank)

    def load_checkpoint(self, directory: Path) -> None:
        path, _ = self.engine.load_checkpoint(str(directory), tag="zero")
        if path is None:
            raise FileNotFoundError(f"{directory}: no DeepSpeed checkpoint with tag 'zero'")
        load_rng(directory, self.rank)

    def save_hf(self, directory: Path, tokenizer) -> None:
        state = self.state_dict_for_save()  # every rank joins the gather
        if self.rank == 0:
            self.module.save_pretrained(directory, state_dict=state)
            if self.bf16:
                # save_pretrained records the module's dtype (its bf16 compute copies); the
                # weights written are the fp32 masters, so the config must say float32 (a
                # dtype="auto" load would otherwise round them to bf16).
                self.module.config.dtype = "float32"
                self.module.config.save_pretrained(directory)
            tokenizer.save_pretrained(directory)
            (directory / "deepspeed_config.json").write_text(json.dumps(self.config, indent=1))


def build_backend(model, settings: TrainSettings, *, total_steps: int, grad_accum: int,
                  use_gpu: bool, device):
    """The backend the settings ask for ("auto": DeepSpeed on GPUs, DDP on CPUs)."""
    precision = settings.resolved_precision(use_gpu)
    check_precision(precision, device)  # before any model work
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if settings.resolved_backend(use_gpu) == "deepspeed":
        return DeepSpeedBackend(model, settings, total_steps=total_steps, grad_accum=grad_accum,
                                device=device, precision=precision)
    return TorchBackend(model, settings, total_steps=total_steps, device=device,
                        precision=precision)
