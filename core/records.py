"""The records lenscope writes and reads as JSON, one declaration each: a comparison
(`generate --json`, a line of results.jsonl, a session's result), a conversation turn and a
conversation's line of results.jsonl, and a search's records and summary. They are built by
`RunResult.to_json`, `conversation.run_turn` / `conversation.record` and `search`, and
written only through `io.datafile.dumps` (NaN and inf become null, so every float here may
be None). tests/test_records.py checks real records against these declarations, key by key.
"""

# No `from __future__ import annotations`: TypedDict reads NotRequired from live annotations.
import types
import typing
from typing import Any, Literal, NotRequired, TypedDict

SCHEMA_VERSION = 1  # of every JSON output (docs/json); up when a script would notice a change


class AlternativeRecord(TypedDict):
    token_id: int
    token: str
    prob: float | None


class RowRecord(TypedDict):
    name: str
    lens: dict[str, Any] | None  # {"name", "stack": [lens.normalized()]}; None for the baseline
    token_ids: list[int]
    tokens: list[str]
    text: str
    finite: bool
    finished: bool
    attention_to_marks: list[float | None]
    first_divergence: int | None
    kl_from_baseline: list[float | None]
    top_alternatives: list[list[AlternativeRecord]]
    attention_to_spans: NotRequired[list[list[float | None]]]  # conversations: per step, per span


class ComparisonRecord(TypedDict):
    model: str
    backend: str
    precision: str
    seed: int
    temperature: float
    prompt: str
    prompt_token_ids: list[int]
    prompt_tokens: list[str]
    marked_token_indices: list[int]
    rows: list[RowRecord]
    timing: dict[str, float]
    cancelled: bool
    attention: NotRequired[dict[str, Any]]  # --capture-attention
    comparison: NotRequired[str]  # its name, in results.jsonl
    heatmaps: NotRequired[list[str]]  # results.jsonl of a run with capture_attention: the SVG files


class MarkRecord(TypedDict):
    message: int
    start: int
    end: int


class TurnRowRecord(TypedDict):
    name: str
    text: str
    token_ids: list[int]
    finished: bool
    prompt_tokens: int
    shares: list[float | None]  # per span: its share of attention while this row answered
    distances: list[int | None]  # per span: tokens from it to the answer
    score: float | None  # the check's, when the turn had one
    passed: bool | None
    fluency: NotRequired[float | None]  # mean log p of the reply under the plain model (experiments measure it)
    held: NotRequired[float]  # a row with a `hold` lens: the share it held (mean target over layers and heads)


class TurnSetup(TypedDict):
    variants: list[dict[str, Any]]
    max_tokens: int
    temperature: float
    seed: int
    keep: int
    concepts: list[str]
    marks: list[MarkRecord]


class TurnRecord(TypedDict):
    user: str
    spans: list[str]
    rows: list[TurnRowRecord]
    results: list[ComparisonRecord]
    setup: TurnSetup


class ConversationRecord(TypedDict):
    comparison: str
    kind: Literal["conversation"]
    model: str
    backend: str
    precision: str  # what the turns ran with ("float32 (dequantized)"; "A + B" when they differ)
    seed: int | None
    temperature: float | None
    max_tokens: int | None
    lens: list[str]
    conversation: dict[str, Any]  # Conversation.to_json(): messages, marks, concepts, mode, keep, branches, turns
    fade: dict[str, Any]


class SearchRecord(TypedDict):
    """A line of a search's results.jsonl: one candidate on one prompt."""

    schema_version: Literal[1]
    candidate: str
    values: dict[str, Any]
    prompt: int
    score: float | None
    parts: dict[str, float | None]
    text: str


class SearchCandidate(TypedDict):
    values: dict[str, Any]
    name: str
    prompts: int
    score: float | None  # the mean over its prompts (-inf, null in JSON, when none scored)
    parts: dict[str, float | None]
    feasible: bool
    records: list[SearchRecord]


class SearchBaseline(TypedDict):
    score: float | None
    parts: dict[str, float | None]
    prompts: int
    records: list[SearchRecord]


class SearchSummary(TypedDict):
    candidates: list[SearchCandidate]
    baseline: SearchBaseline
    dimensions: list[str]


class Versioned(TypedDict):
    schema_version: Literal[1]


class ComparisonLine(ComparisonRecord, Versioned):
    """`generate --json`, and a comparison's line of a run's results.jsonl."""

    work: NotRequired[str]  # a run's line: the hash of what it ran (prompt, lenses, settings, model)


class ConversationLine(ConversationRecord, Versioned):
    """A conversation's line of a run's results.jsonl."""

    work: NotRequired[str]


ResultLine = ComparisonLine | ConversationLine  # a line of a run's results.jsonl


def problem(value: Any, tp: Any, where: str = "record") -> str | None:
    """The first place `value` does not match its declaration `tp` (a TypedDict, read key by
    key: missing, undeclared or mistyped), or None: how a record read back from a file is
    checked before it is used (resume, shards). docs/json holds the same as JSON Schema."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return None
    if origin is NotRequired:
        return problem(value, args[0], where)
    if origin in (typing.Union, types.UnionType):
        found = [problem(value, a, where) for a in args]
        return None if None in found else min((f for f in found if f), key=len)
    if origin is Literal:
        return None if value in args else f"{where}: {value!r:.40} is not one of {args}"
    if typing.is_typeddict(tp):
        if not isinstance(value, dict):
            return f"{where}: not an object"
        hints = typing.get_type_hints(tp)
        missing = [k for k in tp.__required_keys__ if k not in value]
        extra = [k for k in value if k not in hints]
        if missing or extra:
            return f"{where}: " + (f"'{missing[0]}' is missing" if missing else f"'{extra[0]}' is not expected")
        return next((p for k, v in value.items() if (p := problem(v, hints[k], f"{where}.{k}"))), None)
    if origin in (list, dict):
        if not isinstance(value, origin):
            return f"{where}: not a {'list' if origin is list else 'object'}"
        items = value if origin is list else value.values()
        return next((p for v in items if (p := problem(v, args[-1], where + "[]"))), None)
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is type(None):
        ok = value is None
    else:
        ok = isinstance(value, tp)
    return None if ok else f"{where}: {value!r:.40} is not {getattr(tp, '__name__', tp)}"
