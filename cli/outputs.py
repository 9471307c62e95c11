"""What every `--json` command prints and every line of a results.jsonl holds, declared once.
`docs/json/<name>.schema.json` is generated from `SCHEMAS` (tests/test_schemas.py checks
the files are up to date, and real outputs against them). Each output carries
`schema_version`; it goes up when a shape changes in a way a script would notice.
Wherever a token appears, its id is next to its text.
"""

# No `from __future__ import annotations`: TypedDict reads NotRequired from live annotations.
from typing import Any, Literal, NotRequired, TypedDict

from lenscope.core.records import ComparisonLine, ConversationLine, SearchRecord, Versioned


class ScoreRow(TypedDict):
    name: str
    lens: dict[str, Any] | None
    logprob: float | None  # natural log; null where a lens banned a token outright
    token_ids: list[int]  # the continuation's tokens
    tokens: list[str]
    token_logprobs: list[float | None]
    mean_logprob: float | None


class ScoreOutput(Versioned):
    model: str
    prompt: str
    continuation: str
    rows: list[ScoreRow]


class AttentionOutput(Versioned):
    model: str
    layer: int
    head: int | None  # null: the mean over heads
    heads: int
    tokens: list[str]
    token_ids: list[int]
    marked_token_indices: list[int]
    lens: dict[str, Any] | None
    matrix: list[list[float]]  # queries down, keys across


class TokenProb(TypedDict):
    token: str
    id: int
    prob: float | None


class LogitLensLayer(TypedDict):
    layer: str  # "emb", then "L0".."L{n-1}"
    top: list[TokenProb]


class PinnedToken(TypedDict):
    token: str
    id: int
    probs: list[float | None]  # one per layer


class LogitLensPosition(TypedDict):
    position: int
    input: str
    input_id: int
    next: str | None  # the token that followed here (null at the end)
    next_id: int | None
    prediction: str  # the model's own top-1 here
    prediction_id: int
    first_top1_layer: str | None  # the first layer whose top-1 is already the prediction
    layers: list[LogitLensLayer]
    pinned: list[PinnedToken]


class LogitLensRow(TypedDict):
    name: str
    positions: list[LogitLensPosition]


class LogitLensOutput(Versioned):
    model: str
    layers: int
    prompt_len: int
    rows: list[LogitLensRow]


class GeometryRow(TypedDict):
    name: str
    tokens: list[str]
    token_ids: list[int]
    cosine: list[list[float | None]]  # per hidden state, per position: to the baseline's
    norm_ratio: list[list[float | None]]
    pca: list[list[float]]


class GeometryOutput(Versioned):
    model: str
    layers: list[str]
    pca_layer: str
    pca_explained: list[float]
    rows: list[GeometryRow]


class HeadsOutput(Versioned):
    model: str
    layers: int
    heads: dict[str, list[list[int]]]  # role -> [layer, head] pairs past the threshold
    seq_len: int
    seed: int
    threshold: float
    scores: dict[str, list[list[float]]]  # role -> (layers, heads)


class TreeNode(TypedDict):
    id: int
    parent: int | None
    token_ids: list[int]
    text: str
    reason: str
    score: float | None
    parts: dict[str, float | None]
    finished: bool
    pruned: bool
    children: list[int]


class TreeOutput(Versioned):
    model: str
    prompt: str
    options: dict[str, int | float]
    tokens_used: int
    best: list[int]  # node ids, best first
    nodes: list[TreeNode]


class DiffRow(TypedDict):
    """A row that changed between run A and run B: both outputs, where they part (token
    index), and each run's first divergence from its baseline and mean attention on the
    marks; or a row only in one run, with its output."""

    row: str
    text_a: NotRequired[str]
    text_b: NotRequired[str]
    token_ids_a: NotRequired[list[int]]
    token_ids_b: NotRequired[list[int]]
    parts_at: NotRequired[int | None]
    first_divergence: NotRequired[list[int | None]]  # [A, B]
    attention_on_marks: NotRequired[list[float | None]]  # [A, B]
    renamed_from: NotRequired[str]  # its name in A, when it sits where a row of another name was
    only_in: NotRequired[Literal["a", "b"]]
    text: NotRequired[str]  # a row only in one run: its output
    token_ids: NotRequired[list[int]]


class DiffComparison(TypedDict):
    comparison: str
    rows: list[DiffRow]


class DiffOutput(Versioned):
    changed: list[DiffComparison]
    only_in_a: list[str]
    only_in_b: list[str]
    unchanged: int


class ModelEntry(TypedDict):
    name: str  # what --model takes
    kind: Literal["bundled", "named", "cached", "hub", "ollama", "lmstudio", "hub-gguf"]
    path: str
    size_bytes: int
    available: bool  # loads without a download
    source: NotRequired[str | None]  # where a named or converted model comes from (an Ollama manifest)
    about: NotRequired[str]
    # GGUF files in other programs' stores (ollama, lmstudio, hub-gguf), read from the header:
    architecture: NotRequired[str | None]
    quantization: NotRequired[str]  # llama.cpp's file type (Q4_K_M), else the commonest tensor type
    parameters: NotRequired[int]


class ModelsOutput(Versioned):
    models: list[ModelEntry]


class ParamInfo(TypedDict):
    name: str
    type: str
    default: Any
    help: str
    min: NotRequired[float]
    max: NotRequired[float]
    choices: NotRequired[list[str]]
    keyframes: NotRequired[bool]


class LensKind(TypedDict):
    kind: str
    summary: str
    params: list[ParamInfo]


class LensesOutput(Versioned):
    kinds: list[LensKind]


class DoctorOutput(Versioned):
    python: str
    platform: str
    versions: dict[str, str | None]
    backend: str
    metal_available: bool
    cuda_available: bool
    blas: NotRequired[dict[str, Any]]  # Linux CPU only
    kernels: list[dict[str, Any]]
    model: dict[str, Any]


class MeasureOutput(Versioned):
    """`measure WHAT --json`: the table of one measurement (its rows' names, then per row or
    per distance what was measured)."""

    what: Literal["recall", "attribute", "counterfact", "mood", "patch"]
    model: str


class BenchOutput(Versioned):
    model: NotRequired[str]
    seconds: NotRequired[dict[str, float]]
    ratios: NotRequired[dict[str, float]]
    conversion: NotRequired[dict[str, float]]  # bench --convert: seconds, peak_rss_bytes, file/output bytes
    bound: NotRequired[dict[str, float]]  # weight bytes a step reads, stream GB/s, the tok/s that allows


OPEN = {"measure", "bench"}  # reports whose inner keys vary with what was measured

SCHEMAS: dict[str, Any] = {
    "comparison": ComparisonLine, "conversation": ConversationLine, "search-record": SearchRecord,
    "score": ScoreOutput, "attention": AttentionOutput, "logit-lens": LogitLensOutput, "geometry": GeometryOutput,
    "heads": HeadsOutput, "tree": TreeOutput, "diff": DiffOutput, "models": ModelsOutput, "lenses": LensesOutput,
    "doctor": DoctorOutput, "measure": MeasureOutput, "bench": BenchOutput,
}
