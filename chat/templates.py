"""Chat mode: the model's own chat template around the user's text.

The template adds role markers and special tokens the user did not write; marks are
searched in the user's text only, so `--mark the` cannot land on a template's words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lenscope.core.marks import overlapping
from lenscope.errors import BadInput
from lenscope.models import chat_template


@dataclass(frozen=True)
class ChatPrompt:
    text: str  # the templated prompt the model reads
    user_span: tuple[int, int]  # where the user's own text sits in `text` (characters)


def template_name(tokenizer) -> str | None:
    """A short description of the template in use, for headers and reports."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return None
    for marker, name in (("<|im_start|>", "ChatML"), ("[INST]", "Llama-2 [INST]"),
                         ("<|start_header_id|>", "Llama-3"), ("<start_of_turn>", "Gemma"), ("<|user|>", "<|user|>")):
        if marker in template:
            return name
    return "the model's own"


_PLACEHOLDER = "\ue000lenscope-user\ue001"  # private-use characters: no template writes these


def _render(tokenizer, user: str, system: str | None) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    try:
        return chat_template.render(tokenizer, messages)
    except BadInput as exc:  # a template may refuse a system role, or fail to render
        raise BadInput(f"--chat: {exc}") from None


def apply(tokenizer, user: str, system: str | None = None) -> ChatPrompt:
    """The user's text (and an optional system message) through the chat template, with a
    generation prompt for the assistant's reply. The user's span is found by rendering the
    template around a placeholder: searching for the text itself can land in the template's
    own words (a prompt 'a' inside '<|assistant|>')."""
    if not getattr(tokenizer, "chat_template", None):
        raise BadInput("--chat: this model has no chat template")
    text = _render(tokenizer, user, system)
    probe = _render(tokenizer, _PLACEHOLDER, system)
    start = probe.find(_PLACEHOLDER)
    if start >= 0 and text == probe[:start] + user + probe[start + len(_PLACEHOLDER):]:
        return ChatPrompt(text, (start, start + len(user)))
    start = text.rfind(user)  # the template changed the text around it (e.g. trimmed it)
    if start < 0:
        raise BadInput("--chat: the chat template does not keep the user's text verbatim")
    return ChatPrompt(text, (start, start + len(user)))


def model_prompt(tokenizer, text: str, chat: bool, system: str | None = None) -> tuple[str, tuple[int, int] | None]:
    """What the model reads for the user's `text`, and where that text sits in it (None:
    all of it): the one path from a prompt to a model prompt for the CLI, experiments,
    measurements and the TUI."""
    if not chat:
        return text, None
    templated = apply(tokenizer, text, system)
    return templated.text, templated.user_span


# -- for the TUI (kept free of Textual) ------------------------------------------------------
_CHAT_HINTS = ("instruct", "chat", "-it", "_it", "sft", "dpo", "rlhf", "assistant")


def check_options(chat: Any, system: Any, where: str) -> tuple[bool, str | None]:
    """`chat` and `system` from a data file (experiment, search): checked one way."""
    if not isinstance(chat, bool):
        raise BadInput(f"{where}: 'chat' must be true or false")
    if system is not None and (not isinstance(system, str) or not chat):
        raise BadInput(f"{where}: 'system' must be text, and needs chat = true")
    return chat, system


def suggests_chat(tokenizer, name: str, demo: bool = False) -> bool:
    """Chat mode on by default? The model has a chat template, is not the bundled demo model
    (its template is a toy) and its name does not say it is a base model."""
    if demo or not getattr(tokenizer, "chat_template", None):
        return False
    words = str(name).lower()
    if any(hint in words for hint in _CHAT_HINTS):
        return True
    return not any(part == "base" for part in words.replace("_", "-").replace("/", "-").split("-"))


def move_marks(marks, old_spans, old_start: int, new_spans, new_start: int) -> set[int]:
    """Marks on the user's text carried to another tokenization of the same text (with the
    chat template around it or without, another system message): each marked token's
    characters, shifted by where the user's text starts, mark the new tokens they overlap."""
    moved: set[int] = set()
    for m in marks:
        if 0 <= m < len(old_spans):
            a, b = old_spans[m]
            if b > a:
                moved |= overlapping(new_spans, a - old_start + new_start, b - old_start + new_start)
    return moved
