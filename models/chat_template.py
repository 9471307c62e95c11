"""A model's chat template rendered within bounds.

A chat template is code from the model folder. transformers runs it in Jinja's sandbox,
which stops it reaching Python but not spending time or memory: `'x' * 10**10` or a doubling
loop grows to gigabytes, nested loops run for hours. Here the same compiled template
(transformers' own environment: its filters, globals and extensions) runs with three bounds:
arithmetic that would build a huge value is refused before it runs, the template's own
lines run at most STEPS times (a count, not a clock: the same template fails the same way
on any machine), and the process may grow by at most MEMORY bytes while it renders.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

from lenscope.errors import BadInput
from lenscope.models.precision import peak_rss_bytes

STEPS = 1_000_000  # template lines run; a real template renders a turn in a few hundred
SIZE = 1 << 22  # characters or items one operation may build (a real prompt is far shorter)
MEMORY = 1 << 28  # bytes the process may grow by while rendering


class TemplateBomb(Exception):
    """The template went past a bound."""


def render(tokenizer: Any, messages: list[dict], add_generation_prompt: bool = True) -> str:
    """What `tokenizer.apply_chat_template(messages, add_generation_prompt, tokenize=False)`
    gives, or BadInput when the template fails or goes past a bound."""
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str) or not template:
        raise BadInput("the model has no chat template")
    hf = getattr(tokenizer, "_tokenizer", tokenizer)  # mlx-lm's wrapper holds transformers' tokenizer
    try:
        compiled = _compile(template)
        tokens = dict(getattr(hf, "special_tokens_map", {}) or {})
        with _bounded():
            return compiled.render(messages=messages, tools=None, documents=None,
                                   add_generation_prompt=add_generation_prompt, **tokens)
    except TemplateBomb as exc:
        raise BadInput(f"the model's chat template {exc}; it is not rendered") from None
    except MemoryError:
        raise BadInput("the model's chat template ran out of memory; it is not rendered") from None
    except RecursionError:
        raise BadInput("the model's chat template recursed too deeply; it is not rendered") from None
    except Exception as exc:  # a template may refuse a system role, or fail to render
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise BadInput(f"the model's chat template failed: {first}") from None


@functools.lru_cache(maxsize=8)
def _compile(template: str):
    from transformers.utils.chat_template_utils import _compile_jinja_template  # lazy: startup

    # transformers' environment (its filters, globals, extensions), taken from a template of
    # our own: compiling theirs there would fold constants such as 'x' * 10**10 unbounded
    env = _compile_jinja_template("{{ '' }}").environment.overlay()
    env.intercepted_binops = frozenset({"*", "**", "+"})  # read when the template is compiled
    env.call_binop = functools.partial(_binop, env.call_binop)
    return env.from_string(template)


def _binop(call, context, operator: str, left, right):
    """Refuse an operation whose result would be huge, before it is computed."""
    def size(x) -> int:
        return len(x) if isinstance(x, (str, list, tuple)) else 0

    if operator == "*":
        n = right if isinstance(right, int) and not isinstance(right, bool) else left
        sized = size(left) or size(right)
        if isinstance(n, int) and sized * max(n, 0) > SIZE:
            raise TemplateBomb(f"builds a value of {sized * n:,} items")
        if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > 4096:
            raise TemplateBomb("multiplies numbers of more than 4096 bits")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and \
                right * max(left.bit_length(), 1) > 4096:
            raise TemplateBomb("raises a number past 4096 bits")
    elif operator == "+" and size(left) + size(right) > SIZE:
        raise TemplateBomb(f"builds a value of {size(left) + size(right):,} items")
    return call(context, operator, left, right)


class _bounded:
    """Count the template's own lines (Jinja compiles a template to Python code named
    "<template>") and check the process's growth at each."""

    def __enter__(self):
        self.steps, self.start = 0, peak_rss_bytes()
        self.previous = sys.gettrace()
        sys.settrace(self._call)
        return self

    def __exit__(self, *exc) -> None:
        sys.settrace(self.previous)

    def _call(self, frame, event, arg):
        return self._line if frame.f_code.co_filename == "<template>" else None

    def _line(self, frame, event, arg):
        if event == "line":
            self.steps += 1
            if self.steps > STEPS:
                raise TemplateBomb(f"ran more than {STEPS:,} steps")
            if peak_rss_bytes() - self.start > MEMORY:  # every line: a doubling loop is a few lines a step
                raise TemplateBomb(f"grew the process by more than {MEMORY >> 20} MiB")
        return self._line

