"""A model's own chat template (trainers/data/chat_template.py) on SmolLM2-Instruct's ChatML:
token-exact against `apply_chat_template`, labels on exactly the replies and their <|im_end|>,
the injected default system prompt never trained on, and the same prompt at evaluation."""

from __future__ import annotations

import copy

import pytest

from trainers.data.chat_template import NOT_PREFIX_STABLE, chat_template
from trainers.data.formatting import IGNORE, FormatError, tokenize_conversation
from trainers.data.vicuna import STOP

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
CHAT = [
    {"role": "user", "content": "What is 2 + 3?"},
    {"role": "assistant", "content": "2 + 3 = 5."},
    {"role": "user", "content": "And 5 * 5?"},
    {"role": "assistant", "content": "```python\nprint(5 * 5)\n```\n25"},
]
WITH_SYSTEM = [{"role": "system", "content": "Answer tersely."}, *CHAT]


def chat_ids(tokenizer, messages) -> list[int]:
    """`apply_chat_template(tokenize=True)`'s ids (a BatchEncoding in newer transformers)."""
    out = tokenizer.apply_chat_template(messages, tokenize=True)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


def labelled_runs(row) -> list[list[int]]:
    """The maximal runs of consecutive labelled tokens."""
    runs, current = [], []
    for token, label in zip(row["input_ids"], row["labels"], strict=True):
        if label == IGNORE:
            if current:
                runs.append(current)
            current = []
        else:
            assert label == token
            current.append(token)
    return runs + ([current] if current else [])


def test_smollm2_template_is_the_one_in_its_gguf():
    """The converted tokenizer's template is SmolLM2-Instruct's own, read from the GGUF."""
    gguf = pytest.importorskip("gguf")
    from core.model import GGUF_FILE, load_tokenizer, smollm2_gguf_dir

    reader = gguf.GGUFReader(str(smollm2_gguf_dir() / GGUF_FILE))
    field = reader.fields["tokenizer.chat_template"]
    assert load_tokenizer("smollm2_135m").chat_template == bytes(field.parts[field.data[0]]).decode()


@pytest.mark.parametrize("messages", [CHAT, WITH_SYSTEM], ids=["no_system", "system"])
def test_chatml_tokens_and_labels_are_exact(tokenizer, messages):
    row = tokenize_conversation(messages, tokenizer, template="model")
    assert row["input_ids"] == chat_ids(tokenizer, messages)
    replies = [m["content"] for m in messages if m["role"] == "assistant"]
    assert [tokenizer.decode(run) for run in labelled_runs(row)] == \
        [f"{reply}<|im_end|>" for reply in replies]
    masked = tokenizer.decode([t for t, lab in zip(row["input_ids"], row["labels"])
                               if lab == IGNORE])
    # the system prompt the template injects (or the given one) is read, never trained on
    system = messages[0]["content"] if messages[0]["role"] == "system" else DEFAULT_SYSTEM
    assert f"<|im_start|>system\n{system}<|im_end|>" in masked
    assert (DEFAULT_SYSTEM in masked) == (messages is CHAT)
    assert masked.count("<|im_start|>assistant\n") == 2


def test_generation_prompt_and_stop_strings_are_the_models(tokenizer):
    chosen = chat_template("model", tokenizer)
    prompt = chosen.generation_prompt(CHAT[:3])
    assert prompt == tokenizer.apply_chat_template(CHAT[:3], tokenize=False,
                                                   add_generation_prompt=True)
    assert prompt.endswith("<|im_start|>user\nAnd 5 * 5?<|im_end|>\n<|im_start|>assistant\n")
    # the prompt is exactly the tokens training puts before the reply
    row = tokenize_conversation(CHAT, tokenizer, template=chosen)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert row["input_ids"][:len(prompt_ids)] == prompt_ids
    assert row["labels"][len(prompt_ids) - 1] == IGNORE != row["labels"][len(prompt_ids)]
    stop = chosen.stop_strings(STOP)
    assert stop[0] == "<|im_end|>" and "USER:" not in stop


def test_vicuna_stays_the_default(tokenizer):
    default = tokenize_conversation(CHAT, tokenizer)
    assert default == tokenize_conversation(CHAT, tokenizer, template="vicuna")
    assert tokenizer.decode(default["input_ids"]).startswith("A chat between")


def test_a_tokenizer_without_a_chat_template_is_a_clear_error(tokenizer):
    bare = copy.deepcopy(tokenizer)
    bare.chat_template = None
    with pytest.raises(ValueError, match="has no chat template"):
        tokenize_conversation(CHAT, bare, template="model")
    with pytest.raises(ValueError, match="unknown chat template 'chatml'"):
        chat_template("chatml", tokenizer)


def test_a_template_that_rewrites_earlier_turns_is_a_counted_reject(tokenizer):
    """Like templates that drop earlier replies' reasoning: the prompt of turn 2 is not a
    prefix of the whole conversation, so no span can be exact."""
    rewriting = copy.deepcopy(tokenizer)
    rewriting.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' and not loop.last %}"
        "{{ '<|im_start|>assistant\n...<|im_end|>\n' }}{% else %}"
        "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    assert tokenize_conversation(CHAT[:2], rewriting, template="model")["input_ids"]
    with pytest.raises(FormatError) as err:
        tokenize_conversation(CHAT, rewriting, template="model")
    assert err.value.reason == NOT_PREFIX_STABLE


def test_text_spelling_a_special_token_is_refused(tokenizer):
    chat = [{"role": "user", "content": "Say <|im_end|> please"}, CHAT[1]]
    with pytest.raises(FormatError) as err:
        tokenize_conversation(chat, tokenizer, template="model")
    assert err.value.reason == "special_token_in_text"


def test_a_template_that_writes_its_own_bos_gets_no_second_one(llama_tokenizer):
    tok = copy.deepcopy(llama_tokenizer)
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}{{ m['role'] + ':\n' + m['content'] }}"
        "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant:\n' }}{% endif %}")
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]
    row = tokenize_conversation(chat, tok, template="model")
    assert row["input_ids"] == chat_ids(tok, chat)
    assert row["input_ids"].count(tok.bos_token_id) == 1
    assert [tok.decode(run) for run in labelled_runs(row)] == ["Hello there</s>"]


def test_tiny_llama_trains_on_its_own_template(tokenizer, tmp_path):
    from core.settings import TrainSettings
    from trainers import train_stage

    settings = TrainSettings(lr=3e-3, epochs=3, global_batch=4, micro_batch=2, max_len=256,
                             warmup_ratio=0.0, lr_schedule="constant", precision="fp32",
                             template="model")
    rows = train_stage.recipe_rows("math=#8", "tiny_llama", settings)
    assert len(rows) == 8
    for row in rows:  # ChatML rows: the template's default system turn first, never labelled
        assert tokenizer.decode(row["input_ids"]).startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM}")
        assert row["labels"][-2] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    summary = train_stage.train_stage("tiny_llama", rows, tmp_path, settings, quiet=True)
    curve = summary["loss_curve"]
    assert summary["steps"] == 6 and sum(curve[-2:]) / 2 < sum(curve[:2]) / 2 - 0.5, curve


def test_evaluation_asks_with_the_training_template(tokenizer, tiny_model, monkeypatch, tmp_path):
    from evals import generation, likelihood
    from evals.run import evaluate

    question, reply = CHAT[:1], CHAT[1]["content"]
    # ref_logprob: the reply is scored after exactly the ChatML generation prompt
    row = likelihood.reference_row(tokenizer, question, reply, "model")
    prompt = tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
    first = next(i for i, label in enumerate(row["labels"]) if label != IGNORE)
    assert tokenizer.decode(row["input_ids"][:first]) == prompt
    assert tokenizer.decode(row["input_ids"][first:]) == f"{reply}<|im_end|>\n"
    scored = likelihood.score_replies(tiny_model, tokenizer, [question], [reply], template="model")
    assert scored == likelihood.score_rows(tiny_model, [row])
    # general_loss scores the labels training gives the chat under that template
    _, _, records = likelihood.general_loss(tiny_model, tokenizer, [{"id": "c", "messages": CHAT}],
                                            template="model")
    trained = tokenize_conversation(CHAT, tokenizer, template="model")["labels"]
    assert records[0]["tokens"] == sum(label != IGNORE for label in trained)
    # generation renders the same prompt and stops at <|im_end|>
    seen = {}

    def fake_text(model, tok, prompts, *, stop, add_special_tokens, **kw):
        seen.update(prompts=list(prompts), stop=stop, add_special_tokens=add_special_tokens)
        return ["5" for _ in prompts]

    monkeypatch.setattr(generation, "generate_text", fake_text)
    generation.generate((tiny_model, tokenizer), [question], max_new_tokens=4, stop=STOP,
                        template="model")
    assert seen == {"prompts": [prompt], "stop": ("<|im_end|>",),
                    "add_special_tokens": False}
    # evaluate() hands the template to generation, and it is in the cache key
    calls = []

    def fake_generate(handle, conversations, *, template, **kw):
        calls.append(template)
        return ["42" for _ in conversations]

    data = {"gsm8k": str(math_test(tmp_path))}

    def run(template):
        return evaluate("tiny_llama", ["gsm8k"], limit=1, out_dir=tmp_path / template,
                        cache_dir=tmp_path / "cache", data=data, generate_fn=fake_generate,
                        template=template)["gsm8k"]

    vicuna, own = run("vicuna"), run("model")
    assert not vicuna["cached"] and not own["cached"]
    assert run("model")["cached"] and calls == ["vicuna", "model"]
    # the reference answer is scored under each run's own template
    assert vicuna["metrics"]["ref_logprob"] != own["metrics"]["ref_logprob"]


def math_test(folder):
    path = folder / "gsm8k.jsonl"
    path.write_text('{"question": "What is 2 + 3?", "answer": "2 + 3 = 5\\n#### 5"}\n')
    return path
