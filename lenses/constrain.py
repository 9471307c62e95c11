"""Hard islands: a row's tokens held to a grammar (`constrain`) or to exact text (`force`).

`constrain` uses llguidance (the grammar engine llama.cpp and vLLM use) to compute, at each
step, which tokens keep the output inside a regular expression, a Lark grammar or a JSON
schema; every other token's logit becomes -inf for that row only, so a constrained row runs
beside an unconstrained baseline. Chosen over xgrammar and outlines-core because it
takes all three grammar kinds in one API, computes a mask in tens of microseconds without
precomputing the vocabulary against the grammar, and ships manylinux and macOS wheels
with no torch dependency. The mask is applied with MLX ops (its own Metal kernel is not
needed: one where() per row and step).

Both lenses follow the row's own tokens (`ctx.generated`), so they stay right however the
row got there (sampling, other lenses in the stack, teacher-forced scoring).
"""

from __future__ import annotations

import json
import weakref
from typing import Any

import llguidance
import mlx.core as mx
import numpy as np
from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

from lenscope.lenses import words
from lenscope.lenses.base import Ctx, HookPoint, Hooks, Lens
from lenscope.lenses.errors import BadInput
from lenscope.lenses.files import MAX_DEPTH, check, read_text
from lenscope.lenses.params import Param
from lenscope.lenses.probe import Probe

# HF tokenizer -> {vocab size: llguidance tokenizer} (~1 s to build); weak, so a tokenizer
# that is gone takes its entry along (an id() key could be reused by the next one)
_TOKENIZERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _ll_tokenizer(tokenizer: Any, vocab: int) -> Any:
    import llguidance.hf  # lazy: startup

    hf = getattr(tokenizer, "_tokenizer", tokenizer)
    built = _TOKENIZERS.setdefault(hf, {})
    if vocab not in built:
        eos = sorted(getattr(tokenizer, "eos_token_ids", None) or []) or None
        try:
            built[vocab] = llguidance.hf.from_tokenizer(hf, n_vocab=vocab, eos_token=eos)
        except (ValueError, TypeError) as exc:
            raise BadInput(f"constrain: this tokenizer cannot be read by llguidance ({exc})") from None
    return built[vocab]


def allowed_mask(bitmask: np.ndarray, vocab: int) -> np.ndarray:
    """llguidance's bitmask (one int32 per 32 tokens, lowest bit first) as (vocab,) bools."""
    return np.unpackbits(bitmask.view(np.uint8), bitorder="little")[:vocab].astype(bool)


GRAMMAR_FILE_LIMIT = 1 << 20  # a grammar or schema past 1 MiB is not one a person wrote


class Constrain(Lens):
    kind = "constrain"
    summary = "hold the row's output to a regular expression, a Lark grammar or a JSON schema (llguidance)"
    params = (
        Param("regex", "str", "", "a regular expression the whole output must match"),
        Param("lark", "str", "", "a Lark grammar (start rule `start`)"),
        Param("json_schema", "str", "", "a JSON schema (as JSON text); the output is JSON that satisfies it"),
        Param("schema", "str", "", "a JSON schema file (.json), read when the lens is made"),
        Param("grammar", "str", "", "a Lark grammar file (.lark), read when the lens is made"),
        Param("regex_file", "str", "", "a file holding the regular expression, read when the lens is made"),
    )
    FILES = {"schema": "json_schema", "grammar": "lark", "regex_file": "regex"}  # file -> the text it gives

    def __init__(self, **values: Any):
        """A file parameter is read now, into the text parameter it gives: the lens (and a
        session or report that saves it) then holds the grammar itself, not a path."""
        super().__init__(**values)
        for name, text_param in self.FILES.items():
            path = getattr(self, name)
            if not path:
                continue
            if getattr(self, text_param):
                raise BadInput(f"constrain: give {name} or {text_param}, not both")
            text = read_text(path, f"constrain: {name} file '{path}'", GRAMMAR_FILE_LIMIT)
            # a regex file's last line break is the editor's, not part of the pattern
            setattr(self, text_param, text.rstrip("\r\n") if text_param == "regex" else text)
            setattr(self, name, "")
        self.values = {p.name: getattr(self, p.name) for p in self.params}

    def grammar_text(self) -> str:
        given = [(k, getattr(self, k)) for k in ("regex", "lark", "json_schema") if getattr(self, k)]
        if len(given) != 1:
            raise BadInput("constrain: give exactly one of regex, lark, json_schema (or a file: regex_file, grammar, schema)")
        kind, text = given[0]
        if kind == "json_schema":
            try:
                schema = json.loads(text)
            except ValueError as exc:
                raise BadInput(f"constrain: json_schema is not JSON ({exc})") from None
            except RecursionError:
                raise BadInput(f"constrain: json_schema is nested deeper than {MAX_DEPTH} levels") from None
            if not isinstance(schema, dict):
                raise BadInput("constrain: json_schema must be a JSON object")
            check(schema, "constrain: json_schema")
            # fixed separators: with free whitespace a small model can pad with newlines forever
            schema.setdefault("x-guidance", {"whitespace_flexible": False})
            return llguidance.grammar_from("json_schema", json.dumps(schema))
        return llguidance.grammar_from(kind, text)

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        self.vocab = probe.vocab_size
        self.tokenizer = _ll_tokenizer(probe.tokenizer, self.vocab)
        self._grammar = self.grammar_text()
        error = llguidance.LLMatcher.validate_grammar(self._grammar, self.tokenizer)  # "" when it is fine
        if error:
            raise BadInput(f"constrain: the grammar is refused: {' '.join(error.split())[:200]}")
        self._matcher = None
        # a grammar whose language is empty (or only the empty text) lets nothing but end-of-text
        # through: the row would print "" as if it had matched, so it is said now

        start = llguidance.LLMatcher(self.tokenizer, self._grammar, log_level=0)  # nothing on the terminal
        mask = allocate_token_bitmask(1, self.vocab)
        fill_next_token_bitmask(start, mask)
        # an error here is a grammar past llguidance's own limits (validate_grammar does not
        # see those), or one whose language is empty
        error = start.get_error().splitlines()[0] if start.is_error() else ""
        if "symbols.len()" in error:
            raise BadInput("constrain: the grammar has more symbols than llguidance holds (65,525): "
                           "split the schema or make it smaller")
        eos = set(getattr(probe.tokenizer, "eos_token_ids", None) or [])
        if not set(np.flatnonzero(allowed_mask(mask[0], self.vocab)).tolist()) - eos:
            raise BadInput("constrain: the grammar matches no text (at most the empty one): nothing could be generated")
        if error:
            raise BadInput(f"constrain: llguidance cannot take the grammar: {error[:200]}")

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("logits"): self.logits}

    def _sync(self, generated: tuple[int, ...]) -> Any:
        """The matcher after exactly `generated`: advanced by the new tokens, or restarted
        (a new run, or another row's history)."""
        m, seen = self._matcher, getattr(self, "_seen", ())
        if m is None or generated[: len(seen)] != seen:
            m, seen = llguidance.LLMatcher(self.tokenizer, self._grammar, log_level=0), ()
        for t in generated[len(seen):]:
            if not m.is_stopped():
                m.consume_token(int(t))
        self._matcher, self._seen = m, tuple(generated)
        return m

    def logits(self, ctx: Ctx, logits: mx.array) -> mx.array:
        m = self._sync(ctx.generated)
        mask = allocate_token_bitmask(1, self.vocab)
        fill_next_token_bitmask(m, mask)
        allowed = allowed_mask(mask[0], logits.shape[-1])
        if len(allowed) < logits.shape[-1]:  # the model pads its vocabulary past the tokenizer's
            allowed = np.pad(allowed, (0, logits.shape[-1] - len(allowed)))
        return mx.where(mx.array(allowed), logits, -mx.inf)


class Force(Lens):
    kind = "force"
    summary = "insert exact text into the row: from a step, or right after a trigger text appears"
    params = (
        Param("text", "str", "", "the text to insert (as the model tokenizes it)"),
        Param("at_step", "int", 0, "the step where it starts (used when `after` is empty)", 0, 1 << 20),
        Param("after", "str", "", "start right after the output first contains this text"),
    )

    def is_neutral(self) -> bool:
        return not self.text

    def prepare(self, probe: Probe, ids: list[int], marks: list[int]) -> None:
        if self.is_neutral():
            return
        self.ids = words.continuation_ids(probe.tokenizer, self.text, "force")
        self.decode = probe.tokenizer.decode
        self._trigger_at: dict[tuple[int, ...], int | None] = {}

    def hooks(self, n_layers: int) -> Hooks:
        return {HookPoint("logits"): self.logits}

    def start(self, generated: tuple[int, ...]) -> int | None:
        """The step the forced text starts at, or None while the trigger has not appeared."""
        if not self.after:
            return self.at_step
        for n in range(len(generated) + 1):  # the shortest prefix that contains the trigger
            prefix = generated[:n]
            if prefix in self._trigger_at:
                if self._trigger_at[prefix] is not None:
                    return self._trigger_at[prefix]
                continue
            hit = self.after in self.decode(list(prefix))
            self._trigger_at[prefix] = n if hit else None
            if hit:
                return n
        return None

    def logits(self, ctx: Ctx, logits: mx.array) -> mx.array:
        step = len(ctx.generated)
        start = self.start(ctx.generated)
        if start is None or not start <= step < start + len(self.ids):
            return logits
        forced = self.ids[step - start]
        return mx.where(mx.arange(logits.shape[-1]) == forced, logits, -mx.inf)
