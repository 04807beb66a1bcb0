"""A LoRA proxy: the stage trains low-rank adapters on the frozen model (peft), and saves the
adapters merged into the weights, so the next stage and the evaluation load an ordinary
checkpoint (sweep's `--proxy lora`; settings `lora_rank`, `lora_alpha`, `lora_targets`,
`lora_lr`, which enter the stage's identity only when set).
"""

from __future__ import annotations

from peft import LoraConfig, PeftModel, get_peft_model

from core.settings import LORA_TARGETS, TrainSettings


def with_lora(model, settings: TrainSettings):
    """`model` with trainable adapters of the settings' rank (unchanged without a rank)."""
    if not settings.lora_rank:
        return model
    config = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=0.0,
                        target_modules=list(settings.lora_targets or LORA_TARGETS),
                        bias="none", task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def merged(model):
    """The plain model to save: adapters merged into the weights (a copy of the reference is
    not needed: saving is the stage's last act)."""
    return model.merge_and_unload() if isinstance(model, PeftModel) else model
