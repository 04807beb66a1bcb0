"""Part (e) of `python -m benchmarks.gpu_check`: DeepSpeed ZeRO-3 and vLLM, each only where it is
installed (docs/GPU_CHECK.md says how to carry their wheels) and a GPU is present. Neither can
run on the CPU dev machines (no GPU; ZeRO on CPU is tested in tests/trainers/test_deepspeed.py).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import tempfile
import time

import torch

from benchmarks.gpu_check_parts import Size, build, random_rows, sync


def unavailable(module: str, size: Size) -> str | None:
    """Why a part cannot run here, or None."""
    if importlib.util.find_spec(module) is None:
        return "skipped: not installed"
    if size.device != "cuda":
        return "skipped: needs a GPU (this is a CPU run)"
    return None


def _single_process_group() -> None:
    """A one-process NCCL group: DeepSpeed reuses an existing group (dist_init_required=False)."""
    import torch.distributed as dist

    if dist.is_initialized():
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1",
                      LOCAL_RANK="0")
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", rank=0, world_size=1)


def part_deepspeed(size: Size) -> dict:
    """ZeRO-3, bf16 over fp32 masters, SmolLM2-135M's shape: the loss falls on a repeated batch
    and the fp32 masters gathered for saving are finite."""
    why = unavailable("deepspeed", size)
    if why:
        return {"ok": None, "status": why}
    from core.settings import TrainSettings
    from trainers.backends import DeepSpeedBackend
    from trainers.loop import StepSchedule, collate_micro_batches, train_step

    _single_process_group()
    n, length = size.precision_batch
    settings = TrainSettings(lr=1e-4, warmup_ratio=0.0, lr_schedule="constant", global_batch=n,
                             micro_batch=n, precision="bf16", backend="deepspeed", zero_stage=3)
    b = DeepSpeedBackend(build(size), settings, total_steps=20, grad_accum=1,
                         device="cuda", precision="bf16")
    plan = StepSchedule.create(settings, n, 1)
    batches = collate_micro_batches(random_rows([length] * n, size.vocab, seed=1), plan, 0, False)
    sync("cuda")
    t0 = time.perf_counter()
    losses = [train_step(b, batches).loss for _ in range(10)]
    sync("cuda")
    seconds = time.perf_counter() - t0
    state = b.state_dict_for_save()
    finite = all(torch.isfinite(v.float()).all() for v in state.values())
    return {"ok": losses[-1] < losses[0] and finite, "zero_stage": 3, "losses": losses,
            "tokens_per_s": 10 * n * length / seconds, "masters_finite": bool(finite)}


def part_vllm(size: Size) -> dict:
    """vLLM's greedy continuations of random prompts (token ids in, no tokenizer) against
    transformers' batch-1 greedy ones on the same random SmolLM2-shaped weights, in bf16."""
    why = unavailable("vllm", size)
    if why:
        return {"ok": None, "status": why}
    from vllm import LLM, SamplingParams

    from benchmarks.gpu_check_parts import greedy

    model = build(size).to(torch.bfloat16).eval()
    prompts = [r["input_ids"] for r in random_rows([16, 40, 64, 9], size.vocab, seed=5)]
    reference, _ = greedy(model, prompts, size.gen_new_tokens, 1)
    with tempfile.TemporaryDirectory(prefix="gpucheck-vllm-") as tmp:
        model.save_pretrained(tmp)
        del model
        torch.cuda.empty_cache()
        engine = LLM(model=tmp, skip_tokenizer_init=True, dtype="bfloat16", seed=0,
                     gpu_memory_utilization=0.3, enforce_eager=True)
        params = SamplingParams(temperature=0.0, max_tokens=size.gen_new_tokens,
                                ignore_eos=True, detokenize=False)
        t0 = time.perf_counter()
        outs = engine.generate([{"prompt_token_ids": p} for p in prompts], params)
        seconds = time.perf_counter() - t0
    got = [list(o.outputs[0].token_ids) for o in outs]
    same = sum(a == b for a, b in zip(got, reference)) / len(prompts)
    return {"ok": same >= 0.5, "identical_to_hf_batch1": same,
            "tokens_per_s": len(prompts) * size.gen_new_tokens / seconds}


EXTRAS = {"deepspeed": part_deepspeed, "vllm": part_vllm}
