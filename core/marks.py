"""Keeping marks on the right tokens while the prompt is edited."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher


def carry_marks(old_tokens: Sequence[str], new_tokens: Sequence[str], marks: Iterable[int]) -> set[int]:
    """Marks survive an edit on every token whose text is kept (matched by difflib)."""
    marks = set(marks)
    carried: set[int] = set()
    for block in SequenceMatcher(a=list(old_tokens), b=list(new_tokens), autojunk=False).get_matching_blocks():
        for k in range(block.size):
            if block.a + k in marks:
                carried.add(block.b + k)
    return carried


def overlapping(spans: Sequence[tuple[int, int]], start: int, end: int) -> set[int]:
    """Indices of tokens whose character span overlaps [start, end)."""
    return {i for i, (a, b) in enumerate(spans) if b > a and a < end and b > start}
