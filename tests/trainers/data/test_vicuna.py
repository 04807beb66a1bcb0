"""The Vicuna v1.1 template: rendered by fschat, generation prompt = FastChat's get_prompt."""

from __future__ import annotations

import pytest
from fastchat.conversation import get_conv_template

from trainers.data.vicuna import STOP, eos_text_for, generation_prompt, render, stop_strings_for

SYSTEM = get_conv_template("vicuna_v1.1").system_message
CHAT = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"},
]


def test_render_matches_fastchat_text():
    text = render(CHAT[:2])
    assert text == f"{SYSTEM} USER: Hi ASSISTANT: Hello!</s>"


def test_generation_prompt_is_fastchat_get_prompt():
    conv = get_conv_template("vicuna_v1.1")
    for message, role in zip(CHAT, ("USER", "ASSISTANT", "USER")):
        conv.append_message(role, message["content"])
    conv.append_message("ASSISTANT", None)
    assert generation_prompt(CHAT) == conv.get_prompt()
    assert generation_prompt(CHAT).endswith("USER: Bye ASSISTANT:")
    # the prompt is a prefix of the training text of the same conversation answered
    answered = [*CHAT, {"role": "assistant", "content": "Ciao"}]
    assert render(answered).startswith(generation_prompt(CHAT))


def test_system_turn_overrides_template_system():
    chat = [{"role": "system", "content": "Be terse."}, *CHAT[:2]]
    assert render(chat) == "Be terse. USER: Hi ASSISTANT: Hello!</s>"
    assert SYSTEM not in render(chat)


def test_eos_text_follows_tokenizer(tokenizer):
    assert eos_text_for(tokenizer) == "<|im_end|>"
    assert render(CHAT[:2], eos_text="<|im_end|>").endswith("Hello!<|im_end|>")
    assert stop_strings_for(tokenizer)[0] == "<|im_end|>"
    assert set(STOP) <= set(stop_strings_for(tokenizer))


def test_bad_conversations_are_refused():
    with pytest.raises(ValueError, match="ends with a user turn"):
        generation_prompt(CHAT[:2])
    with pytest.raises(ValueError, match="role 'tool'"):
        render([{"role": "tool", "content": "x"}])
