"""The chat template a model is trained and evaluated with, chosen by name.

`vicuna` (the default): the paper's FastChat vicuna_v1.1 (trainers/data/vicuna.py). `model`:
the tokenizer's own chat template (`tokenizer.apply_chat_template`: SmolLM2's and Qwen's
ChatML, ...). Training (formatting.py), the evals' prompts and their stop strings all ask one
`ChatTemplate`, so a model is asked exactly the way it was taught. Try it:
    python -m trainers.data.chat_template smollm2_135m model
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.model import load_tokenizer
from core.settings import DEFAULT_TEMPLATE, TEMPLATES
from trainers.data import vicuna

# The reject key of a conversation whose rendered prefixes are not prefixes of its whole text
# (formatting.py counts it like its own reasons).
NOT_PREFIX_STABLE = "template_not_prefix_stable"
# Rendered to learn where a template puts the end-of-turn text after a reply.
_PROBE = [{"role": "user", "content": "ping"}, {"role": "assistant", "content": "pong"}]


class TemplateError(ValueError):
    """A conversation the template cannot render with exact reply spans; `reason` is the key
    formatting.py counts the reject under."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class ChatTemplate(Protocol):
    name: str
    add_special_tokens: bool  # whether tokenizing the text adds the tokenizer's own BOS etc.
    writes_special_tokens: bool  # whether the template writes special tokens into the text
    end_of_turn_id: int  # the token that ends a trained reply (the model learns to emit it)

    def render_with_spans(self, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]: ...

    def generation_prompt(self, messages: list[dict]) -> str: ...

    def stop_strings(self, requested: Sequence[str] = ()) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class VicunaTemplate:
    """The paper's template with this tokenizer's EOS text as sep2 (template.eos_text_for)."""

    tokenizer: Any = field(repr=False)
    name: str = "vicuna"
    add_special_tokens: bool = True
    writes_special_tokens: bool = False

    @property
    def end_of_turn_id(self) -> int:
        return self.tokenizer.eos_token_id

    def render_with_spans(self, messages):
        return vicuna.render_with_spans(messages, vicuna.eos_text_for(self.tokenizer))

    def generation_prompt(self, messages):
        return vicuna.generation_prompt(messages, vicuna.eos_text_for(self.tokenizer))

    def stop_strings(self, requested: Sequence[str] = vicuna.STOP) -> tuple[str, ...]:
        """The tokenizer's end-of-turn text first, then the caller's (the evals pass STOP)."""
        return tuple(dict.fromkeys((vicuna.eos_text_for(self.tokenizer), *requested)))


@dataclass(frozen=True)
class ModelTemplate:
    """The tokenizer's own chat template. A reply's span runs from the end of the generation
    prompt of the turns before it to the end of the template's end-of-turn text (e.g.
    "<|im_end|>", trained like Vicuna's "</s>"); what the template writes after that (ChatML's
    newline) and everything before the reply, a default system prompt it injects included,
    is never trained on. Spans come from rendering prefixes, so a template whose prefixes are
    not prefixes of the whole text (one that rewrites earlier turns) raises TemplateError."""

    tokenizer: Any = field(repr=False)
    name: str = "model"
    add_special_tokens: bool = False  # as apply_chat_template(tokenize=True): the text has them
    writes_special_tokens: bool = True
    end_of_turn: str = field(init=False, default="")

    def __post_init__(self):
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(
                f"template 'model': the tokenizer {getattr(self.tokenizer, 'name_or_path', '')!r}"
                " has no chat template (tokenizer.chat_template is empty; base models often ship"
                " none): use template 'vicuna' or a tokenizer that has one")
        object.__setattr__(self, "end_of_turn", self._probe_end_of_turn())

    def _render(self, messages, generation: bool = False) -> str:
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False,
                                                  add_generation_prompt=generation)

    def _probe_end_of_turn(self) -> str:
        """The text the template writes right after a reply, up to trailing whitespace; it
        must be one token (the model learns to end a reply with it)."""
        prompt, whole = self._render(_PROBE[:1], True), self._render(_PROBE)
        after = whole[len(prompt):] if whole.startswith(prompt) else ""
        if not after.startswith("pong"):
            raise ValueError(f"template 'model': a reply is not rendered right after the "
                             f"generation prompt ({whole!r}); this template cannot be trained")
        text = after.removeprefix("pong").rstrip()
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
        if len(ids) != 1:
            raise ValueError(f"template 'model': the end-of-turn text {text!r} is {len(ids)} "
                             "tokens, not one: replies could not end with a token to stop on")
        return text

    @property
    def end_of_turn_id(self) -> int:
        return self.tokenizer.convert_tokens_to_ids(self.end_of_turn)

    def render_with_spans(self, messages):
        _check_roles(messages)
        text = self._render(messages)
        spans = []
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            prompt = self._render(messages[:i], True)
            upto = self._render(messages[:i + 1])
            if not (upto.startswith(prompt) and text.startswith(upto)):
                raise TemplateError(NOT_PREFIX_STABLE, f"turn {i}: the rendered conversation "
                                    "up to it is not a prefix of the whole")
            spans.append((len(prompt), self._reply_end(upto, len(prompt), message, i)))
        return text, spans

    def _reply_end(self, upto: str, start: int, message: dict, index: int) -> int:
        turn = upto[start:]
        content = message["content"]
        at = turn.find(content)
        if at < 0:  # a template that trims replies (Llama 3's `| trim`)
            content = content.strip()
            at = turn.find(content)
        end = at + len(content)
        if at < 0 or not turn[end:].startswith(self.end_of_turn):
            raise TemplateError(NOT_PREFIX_STABLE, f"turn {index}: the reply is not followed "
                                f"by {self.end_of_turn!r} in {turn!r}")
        return start + end + len(self.end_of_turn)

    def generation_prompt(self, messages):
        if not messages or messages[-1]["role"] != "user":
            raise ValueError("generation_prompt needs a conversation that ends with a user turn")
        _check_roles(messages)
        return self._render(messages, True)

    def stop_strings(self, requested: Sequence[str] = ()) -> tuple[str, ...]:
        """The end-of-turn and EOS texts, then the caller's strings except Vicuna's own turn
        markers (the evals' stop lists are written for the paper's template)."""
        own = [s for s in requested if s not in vicuna.STOP]
        return tuple(dict.fromkeys((self.end_of_turn, vicuna.eos_text_for(self.tokenizer), *own)))


def _check_roles(messages: list[dict]) -> None:
    """The records' shape (trainers/data/records.py), as the Vicuna path enforces it."""
    for i, message in enumerate(messages):
        role = message["role"]
        if role not in ("user", "assistant") and not (role == "system" and i == 0):
            raise ValueError(f"role {role!r} cannot appear here (only a first 'system' turn)")


def chat_template(name: str | ChatTemplate, tokenizer) -> ChatTemplate:
    """The template `name` ("vicuna" or "model") for this tokenizer; a ChatTemplate passes
    through. "model" on a tokenizer without a chat template raises ValueError."""
    if not isinstance(name, str):
        return name
    if name == "vicuna":
        return VicunaTemplate(tokenizer)
    if name == "model":
        return ModelTemplate(tokenizer)
    raise ValueError(f"unknown chat template {name!r}; one of {', '.join(TEMPLATES)}")


def main(argv: list[str]) -> None:
    tokenizer = load_tokenizer(argv[0] if argv else "smollm2_135m")
    chosen = chat_template(argv[1] if len(argv) > 1 else DEFAULT_TEMPLATE, tokenizer)
    chat = [{"role": "user", "content": "What is 2 + 3?"},
            {"role": "assistant", "content": "2 + 3 = 5."}, {"role": "user", "content": "And 5?"}]
    text, spans = chosen.render_with_spans(chat[:2])
    print(repr(text))
    print("trained:", [text[a:b] for a, b in spans])
    print("prompt:", repr(chosen.generation_prompt(chat)))
    print("stop:", chosen.stop_strings(vicuna.STOP))


if __name__ == "__main__":
    main(sys.argv[1:])
