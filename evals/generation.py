"""Batched generation with the chat template the models were trained on (the paper's Vicuna by
default, or the tokenizer's own: trainers/data/chat_template.py).

transformers with the KV cache and left padding (CPU or GPU), prompts sorted by length into
batches; vLLM instead when it is installed and a GPU is present (that path cannot run on the
CPU-only dev machines). Replies end at the first stop string or EOS.
    python -m evals.generation --model smollm2_135m "What is 7 * 8?"
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from collections.abc import Sequence
from functools import lru_cache

import torch
from transformers import GenerationConfig, StoppingCriteria, StoppingCriteriaList

from core.model import build_model, load_tokenizer, resolve
from core.settings import DEFAULT_TEMPLATE, TEMPLATES
from evals.spec import EvalSpec, Progress
from trainers.data.chat_template import chat_template
from trainers.data.vicuna import STOP, eos_text_for

log = logging.getLogger(__name__)


def load(model, tokenizer=None, dtype=None):
    """(model, tokenizer) from a preset name, HF id or checkpoint path, or passed through."""
    if isinstance(model, tuple):
        model, tokenizer = model
    if isinstance(model, str):
        name = model
        model = _load_model(name, dtype)
        tokenizer = tokenizer or name
    if tokenizer is None:
        raise ValueError("a loaded model needs its tokenizer: pass (model, tokenizer) or tokenizer=")
    if isinstance(tokenizer, str):
        tokenizer = load_tokenizer(tokenizer)
    return model, tokenizer


@lru_cache(maxsize=1)  # evals.run asks for the same model once per eval
def _load_model(name: str, dtype):
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype is None:
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
    return build_model(name, dtype=dtype).to(device).eval()


def stop_strings(tokenizer, stop: Sequence[str]) -> tuple[str, ...]:
    """The caller's stop strings plus the tokenizer's own end-of-turn text, first one first."""
    return tuple(dict.fromkeys((eos_text_for(tokenizer), *stop)))


def truncate(text: str, stop: Sequence[str]) -> str:
    """Cut at the earliest stop string; drop the space that follows "ASSISTANT:"."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:cut].removeprefix(" ")


def generate(model, conversations: Sequence[list[dict]], *, max_new_tokens: int,
             stop: Sequence[str], temperature: float = 0.0, batch_size: int = 8,
             tokenizer=None, backend: str = "auto", seed: int = 0,
             template: str = DEFAULT_TEMPLATE, progress: Progress | None = None) -> list[str]:
    """One reply per conversation (each ends with a user turn), in the conversations' order.

    `model`: preset name, HF id, checkpoint path, or a loaded model (then `tokenizer=`) or a
    `(model, tokenizer)` pair. `backend`: "auto" (vLLM when present with a GPU), "vllm",
    "transformers". Greedy when temperature is 0. `template`: the chat template the model was
    trained with ("vicuna" or "model"); it renders the prompts and adds its own stop strings
    to `stop` (which are written for Vicuna: a model template swaps "USER:" for its own).
    `progress(done, total)` hears each finished batch (vLLM: the whole list at once).
    """
    if backend == "auto":
        backend = "vllm" if isinstance(model, str) and vllm_usable(model) else "transformers"
    if backend == "vllm":
        replies = _generate_vllm(model, conversations, max_new_tokens=max_new_tokens, stop=stop,
                                 temperature=temperature, seed=seed, template=template)
        if progress is not None:
            progress(len(replies), len(replies))
        return replies
    model, tokenizer = load(model, tokenizer)
    chosen = chat_template(template, tokenizer)
    prompts = [chosen.generation_prompt(list(c)) for c in conversations]
    return generate_text(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                         stop=chosen.stop_strings(stop), temperature=temperature,
                         batch_size=batch_size, seed=seed,
                         add_special_tokens=chosen.add_special_tokens, progress=progress)


def generate_text(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int,
                  stop: Sequence[str], temperature: float = 0.0, batch_size: int = 8,
                  seed: int = 0, add_special_tokens: bool = True,
                  progress: Progress | None = None) -> list[str]:
    """transformers generation of already-rendered prompts (the benchmark calls this directly).
    `add_special_tokens`: False for a template that writes its own (its BOS is in the text).
    `progress(done, total)` is called after each batch."""
    encoded = [tokenizer(p, add_special_tokens=add_special_tokens)["input_ids"] for p in prompts]
    # longest first, so each batch holds similar lengths and pads little
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    replies: list[str] = [""] * len(prompts)
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        texts = _generate_batch(model, tokenizer, [encoded[i] for i in chosen],
                                max_new_tokens=max_new_tokens, stop=stop,
                                temperature=temperature, seed=seed + start)
        for i, text in zip(chosen, texts):
            replies[i] = truncate(text, stop)
        if progress is not None:
            progress(min(start + batch_size, len(order)), len(order))
    return replies


def _generate_batch(model, tokenizer, rows, *, max_new_tokens, stop, temperature, seed):
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):  # left padding: every prompt ends where generation starts
        input_ids[i, width - len(row):] = torch.tensor(row)
        attention_mask[i, width - len(row):] = 1
    device = next(model.parameters()).device
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=temperature > 0,
        temperature=temperature if temperature > 0 else None, top_p=None, top_k=None,
        pad_token_id=pad_id, eos_token_id=tokenizer.eos_token_id, use_cache=True)
    if temperature > 0:
        torch.manual_seed(seed)
    with torch.inference_mode():
        out = model.generate(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
            generation_config=config,
            stopping_criteria=StoppingCriteriaList([_stop_strings_class()(tokenizer, stop, width)]))
    return tokenizer.batch_decode(out[:, width:], skip_special_tokens=False)


@lru_cache(maxsize=1)
def _stop_strings_class():
    """Defined on first use: importing transformers costs seconds that scoring never needs."""

    class StopStrings(StoppingCriteria):
        """Marks a sequence done once a stop string appears in its generated tail, so a batch
        ends as soon as every member has stopped (EOS is handled by generate itself)."""

        def __init__(self, tokenizer, stop, prompt_width):
            self.tokenizer, self.start = tokenizer, prompt_width
            self.stop = tuple(s for s in stop if s)
            # n characters span at most n tokens (2n with byte-level pieces), plus the joins
            self.window = 2 * max((len(s) for s in self.stop), default=1) + 4

        def __call__(self, input_ids, scores, **kwargs):
            tails = input_ids[:, self.start:][:, -self.window:]
            texts = self.tokenizer.batch_decode(tails, skip_special_tokens=False)
            done = [any(s in t for s in self.stop) for t in texts]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StopStrings


# ---------------------------------------------------------------- vLLM (GPU machines only)


def vllm_usable(model: str) -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False


    return torch.cuda.is_available() and not resolve(model).startswith("builtin:")


@lru_cache(maxsize=1)
def _vllm_engine(model: str):
    from vllm import LLM  # lazy: optional dependency (vLLM)


    # bfloat16 as the transformers path uses on GPUs: "auto" would read the checkpoint's fp32
    # (the trainers save fp32 masters), which vLLM turns into float16, not bf16.
    return LLM(model=resolve(model), dtype="bfloat16", seed=0)


def _generate_vllm(model: str, conversations, *, max_new_tokens, stop, temperature, seed,
                   template: str = DEFAULT_TEMPLATE):
    """Not runnable on the CPU dev machines: needs `pip install .[gpu]` and a CUDA GPU."""
    from vllm import SamplingParams  # lazy: optional dependency (vLLM)

    engine = _vllm_engine(model)
    chosen = chat_template(template, engine.get_tokenizer())
    prompts = vllm_prompts(chosen, engine.get_tokenizer(), conversations)
    stops = chosen.stop_strings(stop)
    params = SamplingParams(n=1, temperature=temperature, max_tokens=max_new_tokens,
                            stop=list(stops), seed=seed)
    outputs = in_request_order(engine.generate(prompts, params), prompts)
    return [truncate(o.outputs[0].text, stops) for o in outputs]


def vllm_prompts(chosen, tokenizer, conversations) -> list:
    """Rendered prompts for vLLM: text, or token ids where the template writes its own special
    tokens (vLLM would add the tokenizer's BOS to a text prompt a second time)."""
    prompts = [chosen.generation_prompt(list(c)) for c in conversations]
    if chosen.add_special_tokens:
        return prompts
    return [{"prompt_token_ids": tokenizer(p, add_special_tokens=False)["input_ids"]}
            for p in prompts]


def in_request_order(outputs, prompts: Sequence[str]) -> list:
    """vLLM's outputs in the prompts' order. `LLM.generate` returns them in order today, but its
    request ids count up from the call's first prompt, so sorting by them does not rely on it;
    a prompt that does not match its output's is an error, never a silent shuffle."""
    outputs = list(outputs)
    if len(outputs) != len(prompts):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
    ids = [getattr(o, "request_id", None) for o in outputs]
    if all(isinstance(i, str) and i.isdigit() for i in ids):
        outputs = [o for _, o in sorted(zip(map(int, ids), outputs), key=lambda x: x[0])]
    for i, (o, prompt) in enumerate(zip(outputs, prompts)):
        if isinstance(prompt, dict):  # a token prompt: its output carries the same ids
            same = list(getattr(o, "prompt_token_ids", prompt["prompt_token_ids"])) == \
                list(prompt["prompt_token_ids"])
        else:
            same = getattr(o, "prompt", prompt) == prompt
        if not same:
            raise RuntimeError(f"vLLM output {i} answers another prompt")
    return outputs


# ---------------------------------------------------------------- records


def generate_records(model, spec: EvalSpec, items: Sequence[tuple[str, list[dict]]], *,
                     batch_size: int = 8, tokenizer=None, backend: str = "auto",
                     template: str = DEFAULT_TEMPLATE) -> list[dict]:
    """One record per (id, conversation) x sample: what scoring reads back (evals/spec.py)."""
    conversations = [messages for _, messages in items]
    records = []
    for sample in range(spec.n_samples):
        replies = generate(model, conversations, max_new_tokens=spec.max_new_tokens,
                           stop=spec.stop, temperature=spec.temperature, batch_size=batch_size,
                           tokenizer=tokenizer, backend=backend, seed=sample,
                           template=template)
        records += [{"id": item_id, "sample": sample, "messages": messages, "completion": reply,
                     "eval": spec.name, "version": spec.version}
                    for (item_id, messages), reply in zip(items, replies)]
    return records


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2_135m")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--template", default=DEFAULT_TEMPLATE, choices=TEMPLATES)
    parser.add_argument("questions", nargs="+")
    args = parser.parse_args(argv)

    replies = generate(args.model, [[{"role": "user", "content": q}] for q in args.questions],
                       max_new_tokens=args.max_new_tokens, stop=STOP, template=args.template)
    for question, reply in zip(args.questions, replies):
        print(f"USER: {question}\nASSISTANT: {reply}\n")


if __name__ == "__main__":
    main()
