"""The parts of `python -m benchmarks.gpu_check`, each a function `(size) -> dict` run in its own
process. Models are random-initialised from LLaMA configs (SmolLM2-135M's shape, a ~1.1B shape;
on CPU the 2-layer tiny shape), inputs are random token ids: no download, no tokenizer, no Ray.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from dataclasses import dataclass

import torch

from trainers.data.collate import IGNORE, collate_packed, collate_padded

BF16_ULP = 2.0 ** -8  # bf16 keeps 8 significant bits: a relative rounding error up to 2^-8


@dataclass(frozen=True)
class Size:
    """How big each part runs: `gpu()` for the H200 check, `cpu()` so it all fits in a minute."""

    device: str
    model: str  # "smollm2_135m" (its architecture) or "tiny"
    vocab: int
    precision_steps: int
    precision_batch: tuple[int, int]  # rows, tokens per row
    precision_lr: float
    pack_lengths: tuple[int, ...]  # the rows packed against padded
    pack_speed_rows: int  # rows per timed packed/padded step (lengths cycle pack_lengths)
    seq: int  # tokens per row in the throughput part
    max_micro_batch: int
    big_model: bool  # also the ~1.1B config
    gen_prompts: int
    gen_new_tokens: int

    @classmethod
    def gpu(cls) -> Size:
        return cls("cuda", "smollm2_135m", 49152, 50, (8, 256), 1e-4,
                   (37, 512, 129, 1000, 64, 300, 777, 8), 32, 1024, 64, True, 16, 64)

    @classmethod
    def cpu(cls) -> Size:
        return cls("cpu", "tiny", 1024, 50, (4, 32), 1e-3, (7, 40, 19, 3), 8, 64, 8, False, 6, 8)


def build(size: Size, big: bool = False, seed: int = 0):
    from transformers import LlamaForCausalLM

    from core.model import llama_1b_config, smollm2_135m_config, tiny_llama_config

    if big:
        config = llama_1b_config()
    elif size.model == "smollm2_135m":
        config = smollm2_135m_config()
    else:
        config = tiny_llama_config(size.vocab)
    config.attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).to(size.device)


def random_rows(lengths, vocab: int, seed: int, prompt_share: float = 0.3) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for n in lengths:
        ids = torch.randint(3, vocab, (n,), generator=g).tolist()
        cut = int(n * prompt_share)
        rows.append({"input_ids": ids, "labels": [IGNORE] * cut + ids[cut:]})
    return rows


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def backend(model, size: Size, precision: str, lr: float, steps: int, batch: int):
    from core.settings import TrainSettings
    from trainers.backends import TorchBackend

    settings = TrainSettings(lr=lr, warmup_ratio=0.0, lr_schedule="constant", global_batch=batch,
                             micro_batch=batch, precision=precision, backend="ddp")
    return TorchBackend(model, settings, total_steps=steps, device=size.device,
                        precision=precision)


@contextlib.contextmanager
def cpu_bf16_allowed(size: Size):
    """On CPU, let the check emulate bf16 (the trainers refuse it without native bf16, for speed
    only); the tiny model makes it cheap and the part still exercises the same code."""
    from trainers import backends

    original = backends.check_precision
    if size.device == "cpu":
        backends.check_precision = lambda precision, device: None
    try:
        yield
    finally:
        backends.check_precision = original


# ---- (a) bf16 autocast over fp32 masters against fp32 --------------------------------------

def part_precision(size: Size) -> dict:
    from trainers.loop import StepSchedule, collate_micro_batches, train_step

    n, length = size.precision_batch
    rows = random_rows([length] * n, size.vocab, seed=1)
    curves, moved = {}, {}
    for precision in ("fp32", "bf16"):
        model = build(size)
        start = {k: v.detach().clone() for k, v in model.named_parameters() if "embed" not in k}
        with cpu_bf16_allowed(size):
            b = backend(model, size, precision, size.precision_lr, size.precision_steps, n)
        plan = StepSchedule.create(b.settings, n, 1)
        batches = collate_micro_batches(rows, plan, 0, packing=False)
        curves[precision] = [train_step(b, batches).loss for _ in range(size.precision_steps)]
        changed = sum(int((p.detach() != start[k]).sum()) for k, p in model.named_parameters()
                      if k in start)
        moved[precision] = changed / sum(v.numel() for v in start.values())
        assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 masters
        del model, b
    fp32, bf16 = curves["fp32"], curves["bf16"]
    diffs = [abs(a - b) for a, b in zip(fp32, bf16)]
    # Tolerance per step k, derived from the step size: bf16 logits carry a relative rounding
    # error up to 2^-8 per operand, so the losses may differ by ~2 x 2^-8 x loss at any step; and
    # since each step's bf16 gradient differs from the fp32 one in low bits only, the two runs
    # stay within about one optimizer step of each other: the fp32 curve's own change over
    # step k (|loss_k - loss_k-1|) bounds that drift.
    tolerance = [2 * BF16_ULP * abs(fp32[0])] + [
        2 * BF16_ULP * abs(fp32[k]) + abs(fp32[k] - fp32[k - 1]) for k in range(1, len(fp32))]
    worst = max(range(len(diffs)), key=lambda k: diffs[k] / tolerance[k])
    ok = all(d <= t for d, t in zip(diffs, tolerance)) and fp32[-1] < fp32[0] \
        and bf16[-1] < bf16[0] and moved["bf16"] > 0.9
    return {"ok": ok, "steps": size.precision_steps, "lr": size.precision_lr,
            "loss_fp32": [round(x, 5) for x in fp32], "loss_bf16": [round(x, 5) for x in bf16],
            "max_abs_diff": max(diffs), "worst_step": worst, "diff_at_worst": diffs[worst],
            "tolerance_at_worst": tolerance[worst],
            "weights_moved_fraction": moved, "bf16_emulated_on_cpu": size.device == "cpu"}


# ---- (b) packed against padded micro-batches -----------------------------------------------

def attention_kernels(size: Size) -> list[str]:
    kernels = ["sdpa"] if size.device == "cuda" else ["sdpa", "eager"]
    if size.device == "cuda":
        if importlib.util.find_spec("flash_attn") is not None:
            kernels.append("flash_attention_2")
        with contextlib.suppress(ImportError):
            from torch.nn.attention.flex_attention import flex_attention  # noqa: F401

            kernels.append("flex_attention")
    return kernels


def per_sample_losses(model, rows, packed: bool, dtype) -> tuple[list[float], list[torch.Tensor]]:
    """Mean next-token loss of each row and its logits, from one packed or one padded batch."""
    import torch.nn.functional as F

    batch = collate_packed(rows) if packed else collate_padded(rows, 0)
    inputs = {k: v.to(model.device) for k, v in batch.items() if k != "labels"}
    ctx = torch.autocast(model.device.type, dtype=dtype) if dtype != torch.float32 \
        else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        logits = model(**inputs, use_cache=False).logits.float()
    losses, per_row, offset = [], [], 0
    for i, row in enumerate(rows):
        n = len(row["input_ids"])
        lg = logits[0, offset:offset + n] if packed else logits[i, :n]
        offset += n
        labels = torch.tensor(row["labels"], device=lg.device)
        losses.append(float(F.cross_entropy(lg[:-1], labels[1:], ignore_index=IGNORE)))
        per_row.append(lg)
    return losses, per_row


def part_packing(size: Size) -> dict:
    from trainers.loop import compute_loss

    rows = random_rows(size.pack_lengths, size.vocab, seed=2)
    perturbed = [dict(rows[0], input_ids=[(t + 7) % size.vocab for t in rows[0]["input_ids"]])]
    perturbed += rows[1:]
    dtypes = [torch.float32] + ([torch.bfloat16] if size.device == "cuda" else [])
    out, ok = {}, True
    for kernel in attention_kernels(size):
        model = build(size).eval()
        try:
            model.set_attn_implementation(kernel)
        except Exception as err:  # noqa: BLE001 (a kernel this build lacks: record, go on)
            out[kernel] = {"skipped": f"{type(err).__name__}: {err}"[:300]}
            continue
        for dtype in dtypes:
            # fp32: kernels differ in summation order only (~1e-5 relative); bf16: 2^-8 per
            # operand, a few ulps through 30 layers: 8 x 2^-8 of the loss.
            tol = 1e-4 if dtype == torch.float32 else 8 * BF16_ULP
            padded, _ = per_sample_losses(model, rows, False, dtype)
            packed, logits = per_sample_losses(model, rows, True, dtype)
            _, logits_perturbed = per_sample_losses(model, perturbed, True, dtype)
            loss_diff = max(abs(a - b) / max(abs(a), 1e-6) for a, b in zip(padded, packed))
            leak = max(float((a - b).abs().max()) for a, b in zip(logits[1:], logits_perturbed[1:]))
            first_changed = float((logits[0] - logits_perturbed[0]).abs().max())
            good = loss_diff <= tol and leak <= tol * 10 and first_changed > 0
            ok &= good
            out[f"{kernel}/{str(dtype).removeprefix('torch.')}"] = {
                "ok": good, "max_rel_loss_diff": loss_diff, "tolerance": tol,
                "other_samples_max_logit_change": leak, "perturbed_sample_change": first_changed}
        del model
    speed_rows = random_rows([size.pack_lengths[i % len(size.pack_lengths)]
                              for i in range(size.pack_speed_rows)], size.vocab, seed=3)
    model = build(size)
    precision = "bf16" if size.device == "cuda" else "fp32"
    speed = {}
    for packed in (False, True):
        b = backend(model, size, precision, 1e-5, 10, len(speed_rows))
        batch = collate_packed(speed_rows) if packed else collate_padded(speed_rows, 0)
        batch = {k: v.to(size.device) for k, v in batch.items()}
        times = []
        for _ in range(4):
            sync(size.device)
            t0 = time.perf_counter()
            loss, _ = compute_loss(b, batch)
            b.backward(loss)
            sync(size.device)
            times.append(time.perf_counter() - t0)
            b.zero_grad()
        real = sum(len(r["input_ids"]) for r in speed_rows)
        speed["packed" if packed else "padded"] = {
            "tokens_per_s": real / min(times[1:]), "computed_tokens": batch["input_ids"].numel(),
            "real_tokens": real}
    return {"ok": ok, "kernels": out, "lengths": list(size.pack_lengths),
            "train_fwd_bwd": speed, "precision_of_speed": precision}


# ---- (c) train-step throughput and MFU ------------------------------------------------------

def measured_peak(device: str) -> dict:
    """The best of a few large matmuls: bf16 on GPU (what the tensor cores do), fp32 on CPU."""
    n, dtype = (8192, torch.bfloat16) if device == "cuda" else (1024, torch.float32)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(10 if device == "cuda" else 5):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return {"flops": 2 * n ** 3 / best, "n": n, "dtype": str(dtype).removeprefix("torch.")}


def flops_per_token(model, seq: int) -> dict:
    config = model.config
    params = sum(p.numel() for p in model.parameters())
    attention = 12 * config.num_hidden_layers * config.hidden_size * seq
    return {"params": params, "6n": 6 * params, "6n_plus_attention": 6 * params + attention}


def throughput(size: Size, model, peak: float, budget_s: float) -> dict:
    from trainers.loop import StepSchedule, collate_micro_batches, train_step

    precision = "bf16" if size.device == "cuda" else "fp32"
    flops = flops_per_token(model, size.seq)
    tried, best, micro, t_end = [], None, 1, time.perf_counter() + budget_s
    while micro <= size.max_micro_batch and time.perf_counter() < t_end:
        rows = random_rows([size.seq] * micro, size.vocab, seed=micro, prompt_share=0.0)
        b = batches = None
        try:
            b = backend(model, size, precision, 1e-5, 100, micro)
            plan = StepSchedule.create(b.settings, micro, 1)
            batches = collate_micro_batches(rows, plan, 0, packing=False)
            train_step(b, batches)  # warm-up (allocator, kernels)
            sync(size.device)
            t0 = time.perf_counter()
            steps = 3
            for _ in range(steps):
                train_step(b, batches)
            sync(size.device)
            tokens_per_s = steps * micro * size.seq / (time.perf_counter() - t0)
        except torch.OutOfMemoryError:
            tried.append({"micro_batch": micro, "oom": True})
            break
        finally:
            del b, batches
            if size.device == "cuda":
                torch.cuda.empty_cache()
        entry = {"micro_batch": micro, "tokens_per_s": tokens_per_s,
                 "mfu": flops["6n"] * tokens_per_s / peak,
                 "mfu_with_attention": flops["6n_plus_attention"] * tokens_per_s / peak}
        tried.append(entry)
        best = entry
        micro *= 2
    return {"precision": precision, "seq": size.seq, "flops_per_token": flops, "tried": tried,
            "largest_fitting": best}


def part_throughput(size: Size) -> dict:
    peak = measured_peak(size.device)
    out = {"peak": peak, "mfu_convention": "6 x params x tokens/s / measured peak (PaLM, no "
                                          "attention term; mfu_with_attention adds 12 L H T)"}
    model = build(size)
    out["smollm2_135m" if size.model == "smollm2_135m" else "tiny"] = throughput(
        size, model, peak["flops"], budget_s=40)
    del model
    if size.big_model:
        if size.device == "cuda":
            torch.cuda.empty_cache()
        out["llama_1b"] = throughput(size, build(size, big=True), peak["flops"], budget_s=50)
    else:
        out["llama_1b"] = {"skipped": "the ~1.1B config runs on GPU only (minutes a step on CPU)"}
    runs = [v for v in out.values() if isinstance(v, dict) and v.get("largest_fitting")]
    out["ok"] = bool(runs)
    return out


# ---- (d) batched generation -----------------------------------------------------------------

def greedy(model, prompts: list[list[int]], new_tokens: int, batch: int) -> tuple[list, float]:
    """Greedy continuations (token ids) in batches with left padding, and tokens/s."""
    outputs, t0 = [], time.perf_counter()
    for start in range(0, len(prompts), batch):
        chunk = prompts[start:start + batch]
        width = max(len(p) for p in chunk)
        ids = torch.zeros((len(chunk), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, p in enumerate(chunk):
            ids[i, width - len(p):] = torch.tensor(p)
            mask[i, width - len(p):] = 1
        with torch.inference_mode():
            out = model.generate(input_ids=ids.to(model.device),
                                 attention_mask=mask.to(model.device), do_sample=False,
                                 max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 pad_token_id=0, eos_token_id=None, use_cache=True)
        outputs += out[:, width:].tolist()
    sync(str(model.device.type))
    return outputs, len(prompts) * new_tokens / (time.perf_counter() - t0)


def part_generation(size: Size) -> dict:
    g = torch.Generator().manual_seed(4)
    lengths = torch.randint(8, 96 if size.device == "cuda" else 24, (size.gen_prompts,),
                            generator=g).tolist()
    prompts = [r["input_ids"] for r in random_rows(lengths, size.vocab, seed=5)]
    out = {"prompts": len(prompts), "new_tokens": size.gen_new_tokens}
    for dtype in (torch.float32, torch.bfloat16):
        model = build(size).to(dtype).eval()
        single, single_rate = greedy(model, prompts, size.gen_new_tokens, 1)
        batched, batched_rate = greedy(model, prompts, size.gen_new_tokens, len(prompts))
        same = sum(a == b for a, b in zip(single, batched)) / len(prompts)
        out[str(dtype).removeprefix("torch.")] = {
            "batch1_tokens_per_s": single_rate, "batched_tokens_per_s": batched_rate,
            "batch": len(prompts), "identical_to_batch1": same}
        del model
    # Random weights put many logits within a rounding error of each other, so bf16 batched
    # greedy may legitimately part from batch 1; fp32 should almost always agree.
    out["ok"] = out["float32"]["identical_to_batch1"] >= 0.75
    return out


PARTS = {"precision": part_precision, "packing": part_packing, "throughput": part_throughput,
         "generation": part_generation}
