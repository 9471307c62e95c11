"""Scores, declared as data (TOML/JSON, never code): a weighted sum of parts, each part
reported on its own.

    [[score]]                       # one table per part
    kind = "contains"               # contains | regex | words | logprob | judge | fluency | divergence | distinct
    text = "blue"
    weight = 1.0

Parts read a finished comparison: the prompt, each row's output and lens stack, and the
engine for the parts that need the model (`logprob`, `judge`, `fluency`). Row 0 is the
baseline and is scored like any other row, so a search can compare against it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import mlx.core as mx
import numpy as np
import regex

from lenscope.chat.templates import model_prompt, template_name
from lenscope.core.logprob import score
from lenscope.core.numerics import log_softmax
from lenscope.core.results import RunResult, distinct_share
from lenscope.errors import BadInput
from lenscope.lenses import words as user_words
from lenscope.lenses.base import Variant
from lenscope.lenses.params import Param

if TYPE_CHECKING:
    from lenscope.core.engine import Engine

# The mood word lists: the `words` score part, and `lenscope measure mood` counts them.
POSITIVE_WORDS = {"happy", "joy", "joyful", "glad", "wonderful", "great", "love", "loved", "lovely", "beautiful",
                  "fun", "smile", "smiled", "smiling", "laugh", "laughed", "laughing", "delighted", "cheerful",
                  "excited", "amazing", "fantastic", "perfect", "best", "good", "bright", "warm", "celebrate",
                  "celebrated", "enjoy", "enjoyed", "pleasant", "grateful", "proud", "hope", "sunny", "peaceful"}
NEGATIVE_WORDS = {"sad", "sadness", "unhappy", "cry", "cried", "crying", "tears", "lonely", "alone", "miserable",
                  "awful", "terrible", "horrible", "bad", "worst", "hate", "hated", "angry", "upset", "grief",
                  "sorrow", "gloomy", "dark", "cold", "lost", "pain", "hurt", "fear", "afraid", "worried",
                  "tired", "broken", "empty", "dull", "rain", "rainy", "depressed", "disappointed"}
REGEX_TIMEOUT_S = 1.0  # per output and pattern (score regex parts, conversation checks)
WORD_LISTS = {"positive": POSITIVE_WORDS, "negative": NEGATIVE_WORDS}
JUDGE_TEMPLATE = "{question}\n\nText: {text}\n\nAnswer with yes or no."


@dataclass
class Part:
    """One scored quantity; `values` returns one number per row of the comparison."""

    kind: ClassVar[str]
    summary: ClassVar[str]
    params: ClassVar[tuple[Param, ...]] = ()
    weight: float = 1.0
    values_: dict[str, Any] = field(default_factory=dict)  # checked parameters, read as attributes (self.text)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values_"][name]
        except KeyError:
            raise AttributeError(name) from None

    def label(self) -> str:
        shown = ",".join(f"{k}={v}" for k, v in self.values_.items() if v not in ("", (), None, False))
        return f"{self.kind}:{shown}" if shown else self.kind

    def prepare(self, engine: Engine) -> None:
        """What the part needs from outside, got before any work (a judge's model)."""

    def values(self, engine: Engine, result: RunResult, variants: Sequence[Variant]) -> list[float]:
        raise NotImplementedError


class Contains(Part):
    kind = "contains"
    summary = "1 if the output contains `text` (or, with count, how many times)"
    params = (Param("text", "str", "", "the text to look for"),
              Param("count", "bool", False, "count occurrences instead of 1/0"),
              Param("case", "bool", False, "match case"))

    def values(self, engine: Engine, result, variants):
        needle = self.text if self.case else self.text.lower()
        out = []
        for row in result.rows:
            hay = row.text if self.case else row.text.lower()
            n = hay.count(needle)
            out.append(float(n if self.count else n > 0))
        return out


class Regex(Part):
    kind = "regex"
    summary = "1 if the output matches the regular expression (or, with count, how many matches)"
    params = (Param("pattern", "str", "", "a Python regular expression"),
              Param("count", "bool", False, "count matches instead of 1/0"),
              Param("full", "bool", False, "the whole output must match"))

    def compiled(self) -> regex.Pattern:
        try:
            return regex.compile(self.pattern)
        except regex.error as exc:
            raise BadInput(f"score regex: pattern {self.pattern!r} does not compile: {exc}") from None

    def values(self, engine: Engine, result, variants):
        # the `regex` engine (re's syntax) because it takes a timeout: a pattern such as (a+)+$
        # backtracks exponentially on a long output, and a check must not run for hours
        rx = self.compiled()
        try:
            if self.full:
                return [float(rx.fullmatch(row.text, timeout=REGEX_TIMEOUT_S) is not None) for row in result.rows]
            return [float(len(rx.findall(row.text, timeout=REGEX_TIMEOUT_S)) if self.count
                          else rx.search(row.text, timeout=REGEX_TIMEOUT_S) is not None) for row in result.rows]
        except TimeoutError:
            raise BadInput(f"score regex: pattern {self.pattern!r} ran over {REGEX_TIMEOUT_S:g} s on an output "
                           "(it backtracks; make it simpler)") from None


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


class Words(Part):
    kind = "words"
    summary = "how many words of the output are in a list (`list` = positive | negative, or `words`)"
    params = (Param("list", "choice", "positive", "a bundled sentiment list", choices=("positive", "negative", "")),
              Param("words", "strs", (), "your own words (instead of `list`)"))

    def values(self, engine: Engine, result, variants):
        vocab = {w.lower() for w in self.words} if self.words else WORD_LISTS[self.list or "positive"]
        return [float(sum(w in vocab for w in _words(row.text))) for row in result.rows]


class Logprob(Part):
    kind = "logprob"
    summary = "log-probability of `continuation` after the prompt, under each row's lenses"
    params = (Param("continuation", "str", "", "the target text"),
              Param("mean", "bool", False, "per token instead of the total"))

    def values(self, engine: Engine, result, variants):
        _, c_ids, rows = score(engine, result.prompt, self.continuation, list(variants[1:]),
                               result.marked_token_indices)
        n = len(c_ids) if self.mean else 1
        return [r.logprob / n for r in rows]


class Fluency(Part):
    kind = "fluency"
    summary = "mean log-probability of each output's tokens under the plain model"
    params = ()

    def values(self, engine: Engine, result, variants):
        out = []
        for row in result.rows:
            if not row.text:
                out.append(float("-inf"))
                continue
            _, c_ids, rows = score(engine, result.prompt, row.text)
            out.append(rows[0].logprob / max(len(c_ids), 1))
        return out


class Divergence(Part):
    kind = "divergence"
    summary = "mean KL(baseline || row) over the steps the two share a prefix (0 for the baseline)"
    params = ()

    def values(self, engine: Engine, result, variants):
        out = []
        for row in result.rows:
            kl = [k for k in row.kl_from_baseline if k is not None]
            out.append(float(np.mean(kl)) if kl else 0.0)
        return out


class Distinct(Part):
    kind = "distinct"
    summary = "share of each output's token n-grams that are distinct (1 = no repeats; repetition lowers it)"
    params = (Param("n", "int", 1, "n-gram length in tokens", 1, 8),)

    def values(self, engine: Engine, result, variants):
        return [distinct_share(row.token_ids, self.n) for row in result.rows]


class Judge(Part):
    kind = "judge"
    summary = "a model answers a yes/no question about each output: p(yes) - p(no) at its next token"
    params = (Param("question", "str", "", "e.g. 'Is this text cheerful?'"),
              Param("model", "str", "", "the judging model (default: the one that generated)"))

    def prepare(self, engine: Engine) -> None:
        if self.model:  # a judge that cannot load says so before turn 1, not after it
            engine.other_model(self.model)

    def values(self, engine: Engine, result, variants):
        judge = engine.other_model(self.model) if self.model else engine
        return [judge_yes_no(judge, self.question, row.text) for row in result.rows]


def _answer_ids(engine: Engine, words: Sequence[str]) -> list[int]:
    """First token of each spelling of an answer ('yes', ' Yes', ...), once each."""
    spellings = [s for w in words for s in (w, w.capitalize())]
    return user_words.first_ids(engine.tokenizer, spellings, "judge")


def judge_yes_no(engine: Engine, question: str, text: str) -> float:
    """p(yes) - p(no) of the judge's next token after the question, in its chat template
    when it has one (an instruct model answers there)."""
    prompt, _ = model_prompt(engine.tokenizer, JUDGE_TEMPLATE.format(question=question, text=text),
                             template_name(engine.tokenizer) is not None, None)
    with engine.lock:  # the model is shared with the run and the TUI's views (core/model_lock.py)
        logits = engine.model(mx.array([engine.encode(prompt)]))[0, -1].astype(mx.float32)
        mx.eval(logits)
    p = np.exp(np.array(log_softmax(logits)))
    yes, no = _answer_ids(engine, ["yes"]), _answer_ids(engine, ["no"])
    return float(p[yes].sum() - p[no].sum())


PARTS: dict[str, type[Part]] = {c.kind: c for c in (Contains, Regex, Words, Logprob, Judge, Fluency, Divergence,
                                                    Distinct)}
WEIGHT = Param("weight", "float", 1.0, "this part's weight in the sum", -1e6, 1e6)


def build_part(entry: Any, where: str) -> Part:
    if not isinstance(entry, dict):
        raise BadInput(f"{where}: a score part must be a table")
    kind = entry.get("kind")
    cls = PARTS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise BadInput(f"{where}: score kind must be one of {', '.join(PARTS)}, got {kind!r}")
    known = {p.name: p for p in cls.params}
    unknown = sorted(set(entry) - set(known) - {"kind", "weight"})
    if unknown:
        raise BadInput(f"{where}: score '{kind}' has no key '{unknown[0]}' (keys: weight, {', '.join(known)})")
    values = {name: p.parse(entry[name], where) if name in entry else p.default for name, p in known.items()}
    part = cls(weight=WEIGHT.parse(entry.get("weight", 1.0), where), values_=values)
    required = {"contains": "text", "regex": "pattern", "logprob": "continuation", "judge": "question"}.get(kind)
    if required and not values[required]:
        raise BadInput(f"{where}: score '{kind}' needs '{required}'")
    if kind == "regex":
        part.compiled()
    return part


@dataclass
class Score:
    parts: list[Part]

    @classmethod
    def from_data(cls, entries: Any, where: str) -> Score:
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list) or not entries:
            raise BadInput(f"{where}: 'score' must be a table or a non-empty list of tables")
        return cls([build_part(e, f"{where} score {i + 1}") for i, e in enumerate(entries)])

    def prepare(self, engine: Engine) -> None:
        for part in self.parts:
            part.prepare(engine)

    def evaluate(self, engine: Engine, result: RunResult, variants: Sequence[Variant]) -> list[dict[str, Any]]:
        """Per row: {"score": weighted sum, "parts": {label: value}}."""
        columns = [(p, p.values(engine, result, variants)) for p in self.parts]
        out = []
        for r in range(len(result.rows)):
            parts = {p.label(): v[r] for p, v in columns}
            total = sum(p.weight * v[r] for p, v in columns)
            out.append({"score": total, "parts": parts})
        return out
