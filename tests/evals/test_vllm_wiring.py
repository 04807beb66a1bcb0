"""The vLLM path of evals/generation.py on CPU, against a fake `vllm` module (the real one needs
a CUDA GPU): the engine and sampling arguments are exactly what the eval spec asks for, and
outputs returned out of order come back to the right items."""

from __future__ import annotations

import random
import sys
import types

import pytest

from evals import generation
from evals.gsm8k import GSM8K
from trainers.data.vicuna import STOP, eos_text_for, generation_prompt


class FakeOutput:
    def __init__(self, request_id: str, prompt: str, text: str):
        self.request_id, self.prompt = request_id, prompt
        self.outputs = [types.SimpleNamespace(text=text)]


def fake_vllm(tokenizer, calls: dict, shuffle: bool = True) -> types.ModuleType:
    module = types.ModuleType("vllm")
    counter = iter(range(10**6))

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            calls.setdefault("sampling", []).append(kwargs)

    class LLM:
        def __init__(self, **kwargs):
            calls["engine"] = kwargs

        def get_tokenizer(self):
            return tokenizer

        def generate(self, prompts, params):
            calls.setdefault("prompts", []).append(list(prompts))
            # each reply names its prompt's question and runs past a stop string
            outs = [FakeOutput(str(next(counter)), p,
                               f" answer to [{p.split('USER: ')[-1].split(' ASSISTANT')[0]}]"
                               f"</s>USER: more") for p in prompts]
            if shuffle:
                random.Random(0).shuffle(outs)
            return outs

    module.LLM, module.SamplingParams = LLM, SamplingParams
    return module


@pytest.fixture()
def calls(monkeypatch, tokenizer):
    recorded: dict = {}
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(tokenizer, recorded))
    generation._vllm_engine.cache_clear()
    yield recorded
    generation._vllm_engine.cache_clear()


def test_vllm_gets_the_specs_arguments_and_outputs_map_back(calls, tokenizer, tmp_path):
    questions = [f"What is {i} + {i}?" for i in range(7)]
    items = [(f"q{i}", [{"role": "user", "content": q}]) for i, q in enumerate(questions)]
    records = generation.generate_records(str(tmp_path), GSM8K, items, backend="vllm")
    assert calls["engine"] == {"model": str(tmp_path), "dtype": "bfloat16", "seed": 0}
    stop = list(generation.stop_strings(tokenizer, GSM8K.stop))
    assert stop[0] == eos_text_for(tokenizer) and set(STOP) <= set(stop)
    assert calls["sampling"] == [{"n": 1, "temperature": GSM8K.temperature,
                                  "max_tokens": GSM8K.max_new_tokens, "stop": stop, "seed": 0}]
    eos = eos_text_for(tokenizer)
    assert calls["prompts"] == [[generation_prompt(m, eos_text=eos) for _, m in items]]
    for (item_id, _), question, record in zip(items, questions, records, strict=True):
        assert record["id"] == item_id and record["eval"] == "gsm8k"
        # the reply to its own question, cut at the first stop string ("</s>" is in STOP)
        assert record["completion"] == f"answer to [{question}]"


def test_sampled_evals_pass_each_samples_seed(calls, tmp_path):
    spec = generation.EvalSpec("sampled", version="1", max_new_tokens=9, stop=("###",),
                               temperature=0.7, n_samples=2)
    items = [("a", [{"role": "user", "content": "hi"}])]
    records = generation.generate_records(str(tmp_path), spec, items, backend="vllm")
    assert [c["seed"] for c in calls["sampling"]] == [0, 1]
    assert all(c["temperature"] == 0.7 and c["max_tokens"] == 9 for c in calls["sampling"])
    assert [r["sample"] for r in records] == [0, 1]


def test_an_output_for_another_prompt_is_an_error():
    outs = [FakeOutput("x", "p2", "b"), FakeOutput("y", "p1", "a")]
    with pytest.raises(RuntimeError, match="another prompt"):
        generation.in_request_order(outs, ["p1", "p2"])
    with pytest.raises(RuntimeError, match="outputs for"):
        generation.in_request_order(outs[:1], ["p1", "p2"])
