"""Training settings: one frozen dataclass with the paper's defaults (Dong et al., App. C).

FastChat/Vicuna recipe: 3 epochs, AdamW, peak lr 2e-5, 3% linear warmup then cosine decay,
global batch 16 samples, max length 2048, bf16 on GPUs. Settings travel to Ray workers as plain
dicts (`to_dict`/`from_dict`); `fingerprint_dict` is the part that changes the trained weights.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

PRECISIONS = ("auto", "fp32", "bf16")
BACKENDS = ("auto", "ddp", "deepspeed")
OVERLONG = ("truncate", "drop")
# Chat templates (trainers/data/chat_template.py): the paper's FastChat vicuna_v1.1, or the
# tokenizer's own chat template.
TEMPLATES = ("vicuna", "model")
DEFAULT_TEMPLATE = "vicuna"

# Fields that only change how a run is executed or survives failures, never the weights it ends
# with: left out of the fingerprint so a stage trained with other values is still reused.
NOT_IN_FINGERPRINT = frozenset({"checkpoint_every_steps", "max_failures", "offload"})
# Fields that change the weights but were added after stages were trained with their default:
# left out of the fingerprint while they hold that default, so every existing stage id (all
# trained with it) stays valid, and put in once they differ, so other values never reuse them.
NEW_WITH_DEFAULT = {"template": DEFAULT_TEMPLATE, "lora_rank": 0, "lora_alpha": 16,
                    "lora_targets": None, "lora_lr": 0.0}
# A LoRA proxy's adapters (trainers/lora.py) go on these projections unless told otherwise:
# every attention and MLP matrix of a LLaMA-style block.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class SettingsError(ValueError):
    """A setting that cannot work, with the field and the reason in the message."""


def precision_mode(precision: str, backend: str) -> str:
    """A resolved precision ("fp32"/"bf16") and backend ("ddp"/"deepspeed") -> what manifests
    record: "fp32", "bf16-autocast" (fp32 weights, bf16 autocast forward) or "bf16-deepspeed"
    (bf16 compute copies, fp32 masters in DeepSpeed's optimizer). Both bf16 modes keep fp32
    master weights."""
    if precision == "fp32":
        return "fp32"
    return "bf16-deepspeed" if backend == "deepspeed" else "bf16-autocast"


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 3
    optimizer: str = "adamw"
    lr: float = 2e-5
    warmup_ratio: float = 0.03
    lr_schedule: str = "cosine"  # linear warmup, then cosine decay to 0 (HF/FastChat)
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    global_batch: int = 16  # samples per optimizer step = micro_batch x grad_accum x workers
    micro_batch: int = 2  # samples per forward pass per worker (FastChat: 2 per GPU x 8 GPUs)
    max_len: int = 2048
    overlong: str = "truncate"
    template: str = DEFAULT_TEMPLATE  # "vicuna" (the paper's) or "model" (the tokenizer's own)
    # "fp32", "bf16" or "auto" (bf16 on GPUs, fp32 on CPUs). Weights are never trained in pure
    # bf16 (AdamW steps of lr 2e-5 round away): "bf16" keeps fp32 master weights, which are
    # what AdamW updates and what checkpoints hold. DDP runs the forward under
    # torch.autocast(<device type>, bfloat16), on CPU as on CUDA; DeepSpeed computes with bf16
    # copies and steps fp32 masters in its ZeRO optimizer. On a CPU without native bf16
    # (no avx512_bf16/amx_bf16) "bf16" is refused: emulated, it is several times slower than
    # fp32 and buys nothing; use "fp32" or "auto" there.
    precision: str = "auto"
    gradient_checkpointing: bool = False
    packing: bool = False  # pack each micro-batch into one row: same samples, no padding
    seed: int = 0
    backend: str = "auto"  # "auto": DeepSpeed on GPUs, DDP on CPUs
    zero_stage: int = 3
    offload: bool = False  # DeepSpeed: optimizer state (and ZeRO-3 params) in CPU memory
    checkpoint_every_steps: int = 0  # 0: no mid-stage checkpoints
    max_failures: int = 0
    # A LoRA proxy (sweep's --proxy lora; trainers/lora.py): adapters of this rank on the
    # frozen model, merged into the weights each stage saves. 0: full fine-tuning.
    lora_rank: int = 0
    lora_alpha: int = 16
    lora_targets: tuple[str, ...] | None = None  # None: LORA_TARGETS
    lora_lr: float = 0.0  # the adapters' learning rate; 0: `lr`

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, "must be >= 1"),
            ("optimizer", self.optimizer == "adamw", "only 'adamw' is implemented"),
            ("lr", self.lr > 0, "must be > 0"),
            ("warmup_ratio", 0 <= self.warmup_ratio < 1, "must be in [0, 1)"),
            ("lr_schedule", self.lr_schedule in ("cosine", "linear", "constant"),
             "must be cosine, linear or constant"),
            ("weight_decay", self.weight_decay >= 0, "must be >= 0"),
            ("global_batch", self.global_batch >= 1, "must be >= 1"),
            ("micro_batch", self.micro_batch >= 1, "must be >= 1"),
            ("max_len", self.max_len >= 8, "must be >= 8"),
            ("overlong", self.overlong in OVERLONG, f"must be one of {OVERLONG}"),
            ("template", self.template in TEMPLATES, f"must be one of {TEMPLATES}"),
            ("precision", self.precision in PRECISIONS, f"must be one of {PRECISIONS}"),
            ("backend", self.backend in BACKENDS, f"must be one of {BACKENDS}"),
            ("zero_stage", self.zero_stage in (2, 3), "must be 2 or 3"),
            ("checkpoint_every_steps", self.checkpoint_every_steps >= 0, "must be >= 0"),
            ("max_failures", self.max_failures >= -1, "must be >= -1 (-1: retry forever)"),
            ("lora_rank", self.lora_rank >= 0, "must be >= 0 (0: full fine-tuning)"),
            ("lora_alpha", self.lora_alpha >= 1, "must be >= 1"),
            ("lora_lr", self.lora_lr >= 0, "must be >= 0 (0: lr)"),
            # A proxy is small and cheap: DDP holds the frozen model whole on each worker;
            # merging adapters into ZeRO-3 shards is not done here.
            ("backend", not (self.lora_rank and self.backend == "deepspeed"),
             "a LoRA proxy trains with ddp (or auto on CPUs), not deepspeed"),
        ]
        for name, ok, reason in checks:
            if not ok:
                raise SettingsError(f"TrainSettings.{name}={getattr(self, name)!r}: {reason}")

    def grad_accum(self, workers: int) -> int:
        """Micro-batches per worker per optimizer step; the global batch must split exactly."""
        per_step = self.micro_batch * workers
        if workers < 1 or self.global_batch % per_step:
            raise SettingsError(
                f"global_batch={self.global_batch} is not a multiple of micro_batch="
                f"{self.micro_batch} x workers={workers} = {per_step}; choose micro_batch and "
                "workers so that micro_batch x grad_accum x workers == global_batch"
            )
        return self.global_batch // per_step

    def resolved_precision(self, use_gpu: bool) -> str:
        if self.precision == "auto":
            return "bf16" if use_gpu else "fp32"
        return self.precision

    def resolved_backend(self, use_gpu: bool) -> str:
        if self.backend == "auto":
            return "deepspeed" if use_gpu else "ddp"
        return self.backend

    def precision_mode(self, use_gpu: bool) -> str:
        """How the weights are trained: "fp32", "bf16-autocast" (DDP) or "bf16-deepspeed"."""
        return precision_mode(self.resolved_precision(use_gpu), self.resolved_backend(use_gpu))

    def to_dict(self) -> dict:
        out = asdict(self)
        out["adam_betas"] = list(self.adam_betas)
        if self.lora_targets is not None:
            out["lora_targets"] = list(self.lora_targets)
        return out

    @property
    def learning_rate(self) -> float:
        """What the optimizer steps with: the adapters' own rate for a LoRA proxy."""
        return self.lora_lr if self.lora_rank and self.lora_lr else self.lr

    @classmethod
    def from_dict(cls, data: dict) -> TrainSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"TrainSettings: unknown fields {unknown}")
        data = dict(data)
        if data.get("lora_targets") is not None:
            data["lora_targets"] = tuple(data["lora_targets"])
        if "adam_betas" in data:
            data["adam_betas"] = tuple(float(b) for b in data["adam_betas"])
        return cls(**data)

    def fingerprint_dict(self) -> dict:
        """The fields that change the trained weights (for stage identity)."""
        out = {k: v for k, v in self.to_dict().items() if k not in NOT_IN_FINGERPRINT}
        for name, default in NEW_WITH_DEFAULT.items():
            if out[name] == default:
                del out[name]
        return out
