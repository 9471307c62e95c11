"""Chat mode: the model's own chat template around the user's text.

The template adds role markers and special tokens the user did not write; marks are
searched in the user's text only, so `--mark the` cannot land on a template's words.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import BadInput


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


def apply(tokenizer, user: str, system: str | None = None) -> ChatPrompt:
    """The user's text (and an optional system message) through the chat template, with a
    generation prompt for the assistant's reply."""
    if not getattr(tokenizer, "chat_template", None):
        raise BadInput("--chat: this model has no chat template")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    try:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:  # a template may refuse a system role, or fail to render
        raise BadInput(f"--chat: the model's chat template failed: {str(exc).splitlines()[0] if str(exc) else exc}") \
            from None
    start = text.rfind(user)  # the user's turn is the last one; a system text may repeat it
    if start < 0:
        raise BadInput("--chat: the chat template does not keep the user's text verbatim")
    return ChatPrompt(text, (start, start + len(user)))
