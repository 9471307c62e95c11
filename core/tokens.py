"""The tokenizer half of a loaded model, alone: what the UI thread may use while a run
holds the model (`Engine.tokens`). Nothing here runs the model, so nothing here takes the
engine's lock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lenscope.core.marks import overlapping
from lenscope.errors import BadInput


class Tokens:
    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer  # mlx-lm's TokenizerWrapper (chat templates read it)
        self._token_texts: dict[int, str] = {}

    def encode(self, text: str) -> list[int]:
        # a chat-templated text already starts with the BOS token: do not add a second (as mlx_lm does)
        bos = getattr(self.tokenizer, "bos_token", None)
        if bos and text.startswith(bos):
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        return list(self.tokenizer.encode(text))

    def token_text(self, token_id: int) -> str:
        text = self._token_texts.get(token_id)
        if text is None:  # decoding is slow next to a small model's step: cache per id
            text = self._token_texts[token_id] = self.tokenizer.decode([int(token_id)])
        return text

    def token_spans(self, prompt: str, ids: list[int]) -> list[tuple[int, int]]:
        """Character span of each prompt token (empty for special tokens)."""
        hf = getattr(self.tokenizer, "_tokenizer", None)
        try:
            enc = hf(prompt, return_offsets_mapping=True)
        except Exception:  # slow tokenizers have no offsets: decode prefixes instead
            enc = None
        if enc is not None and list(enc["input_ids"]) == ids:
            return [tuple(o) for o in enc["offset_mapping"]]
        spans, prev = [], 0
        for i in range(len(ids)):
            end = len(self.tokenizer.decode(ids[: i + 1]))
            spans.append((prev, end))
            prev = end
        return spans

    def marks_from_text(self, prompt: str, ids: list[int], texts: Sequence[str],
                        region: tuple[int, int] | None = None) -> list[int]:
        """Every prompt token overlapping each occurrence of each text (within `region`, the
        user's own text in a chat template, when given)."""
        spans = self.token_spans(prompt, ids)
        lo, hi = region or (0, len(prompt))
        marked: set[int] = set()
        for text in texts:
            if not text:
                raise BadInput("--mark: empty text")
            hits = [i for i in range(lo, hi - len(text) + 1) if prompt.startswith(text, i)]
            if not hits:
                raise BadInput(f"--mark '{text}': does not occur in the prompt")
            for start in hits:
                marked |= overlapping(spans, start, start + len(text))
        return sorted(marked)

    def check_marks(self, indices: Sequence[int], n_prompt: int) -> list[int]:
        bad = [i for i in indices if not 0 <= i < n_prompt]
        if bad:
            raise BadInput(f"--mark-tokens: index {bad[0]} is outside the prompt (0..{n_prompt - 1})")
        return sorted(set(indices))
