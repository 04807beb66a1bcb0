"""The paper's chat template: FastChat's `vicuna_v1.1`, rendered by fschat itself.

Training (trainers/data/formatting.py) and evaluation prompts (evals/) both come from here, so the
model is asked exactly the way it was taught. Try it:
    python -m trainers.data.vicuna
"""

from __future__ import annotations

from fastchat.conversation import Conversation, get_conv_template

TEMPLATE_NAME = "vicuna_v1.1"
LLAMA_EOS_TEXT = "</s>"
# Generation stops at the end-of-turn text or when the model starts the next user turn itself.
STOP = (LLAMA_EOS_TEXT, "USER:")


def _conversation(messages: list[dict], eos_text: str) -> Conversation:
    conv = get_conv_template(TEMPLATE_NAME)
    conv.sep2 = eos_text
    turns = list(messages)
    if turns and turns[0]["role"] == "system":
        conv.set_system_message(turns.pop(0)["content"])
    user, assistant = conv.roles
    for message in turns:
        role = message["role"]
        if role == "user":
            conv.append_message(user, message["content"])
        elif role == "assistant":
            conv.append_message(assistant, message["content"])
        else:
            raise ValueError(f"role {role!r} cannot appear here (only a first 'system' turn)")
    return conv


def render(messages: list[dict], eos_text: str = LLAMA_EOS_TEXT) -> str:
    """The whole conversation as training text: every assistant reply ends with `eos_text`."""
    return _conversation(messages, eos_text).get_prompt()


def generation_prompt(messages: list[dict], eos_text: str = LLAMA_EOS_TEXT) -> str:
    """A conversation ending in a user turn, rendered up to and including "ASSISTANT:".

    Exactly FastChat's `get_prompt()` with a `None` assistant message; earlier assistant turns
    end with `eos_text` as in training.
    """
    if not messages or messages[-1]["role"] != "user":
        raise ValueError("generation_prompt needs a conversation that ends with a user turn")
    conv = _conversation(messages, eos_text)
    conv.append_message(conv.roles[1], None)
    return conv.get_prompt()


def render_with_spans(
    messages: list[dict], eos_text: str = LLAMA_EOS_TEXT
) -> tuple[str, list[tuple[int, int]]]:
    """`render(messages)` and the character span `[start, end)` of each assistant reply in it.

    A span starts right after "ASSISTANT:" (so it holds the space before the reply, which
    tokenizers fold into the reply's first token) and ends after the end-of-turn text. Spans are
    measured by rendering prefixes with fschat, never by re-typing the template here.
    """
    conv = _conversation([], eos_text)
    turns = list(messages)
    if turns and turns[0]["role"] == "system":
        conv.set_system_message(turns.pop(0)["content"])
    user, assistant = conv.roles
    spans, prompts = [], []
    for message in turns:
        role = message["role"]
        if role == "user":
            conv.append_message(user, message["content"])
            continue
        if role != "assistant":
            raise ValueError(f"role {role!r} cannot appear here (only a first 'system' turn)")
        conv.append_message(assistant, None)
        prompt = conv.get_prompt()
        conv.messages[-1][1] = message["content"]
        prompts.append(prompt)
        spans.append((len(prompt), len(conv.get_prompt())))
    text = conv.get_prompt()
    for prompt, (start, end) in zip(prompts, spans):
        # a template whose prompt is not a prefix of its training text cannot be labelled by span
        if not text.startswith(prompt) or not text[start:end].endswith(eos_text):
            raise ValueError(f"template did not end a reply with {eos_text!r}: {text[start:end]!r}")
    return text, spans


def assistant_prefix() -> str:
    """The text that opens an assistant reply ("ASSISTANT:"); the reply follows after a space."""
    return get_conv_template(TEMPLATE_NAME).roles[1] + ":"


def eos_text_for(tokenizer) -> str:
    """The end-of-turn text to render with this tokenizer.

    Vicuna's sep2 "</s>" is LLaMA's EOS token written as text: the LLaMA tokenizer maps it to the
    EOS id, so the model learns to emit EOS and generation stops on `eos_token_id`. SmolLM2's EOS
    is "<|im_end|>"; for it "</s>" is four ordinary tokens, the reply would never end in the EOS
    id and generation would run on to max_new_tokens. So sep2 becomes the tokenizer's own EOS text.
    """
    eos = getattr(tokenizer, "eos_token", None)
    if not eos:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no eos_token to end turns with")
    return str(eos)


def stop_strings_for(tokenizer) -> tuple[str, ...]:
    """`STOP` with this tokenizer's end-of-turn text in place of LLaMA's."""
    eos = eos_text_for(tokenizer)
    return tuple(dict.fromkeys((eos, *STOP)))


if __name__ == "__main__":
    demo = [
        {"role": "user", "content": "What is 2 + 3?"},
        {"role": "assistant", "content": "2 + 3 = 5."},
        {"role": "user", "content": "And 5 + 5?"},
    ]
    print(repr(render(demo[:2])))
    print(repr(generation_prompt(demo)))
