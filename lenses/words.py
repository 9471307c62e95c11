"""The one rule for text a user gives a lens: which token ids a word or phrase stands for.

Three kinds of user text, each encoded one way:

- a *word* (`bias:words=`, `token=` / `concepts=` directions, `--pin`, a judge's answer
  words): the ordinary tokens it takes in running text, never a special token (BOS, EOS,
  chat markers). Its *forms* are how it reads mid-sentence, after a space (BPE's
  `Ġgreen`, SentencePiece's `▁green`), then at the very start of a text (`green`), the
  same ids once. A word of several tokens keeps them all: `bias` acts on the first token
  of each form (the one the model must emit to start the word), a direction is the mean
  of the rows of the mid-sentence form's tokens.
- a *continuation* (`force:text=`, a scored continuation): the tokens the model emits
  after its prompt, no special tokens.
- a *context* (contrast texts, a patch source, a judge's prompt): text the model reads
  as it reads a prompt, BOS included where the model adds one (a state read without it is
  off the model's distribution); that is `Probe.encode`.

A word or continuation that encodes to no ordinary token is refused in one line.
"""

from __future__ import annotations

from typing import Any

from lenscope.lenses.errors import BadInput

_ANCHOR = "a"  # what a mid-sentence word follows; its tokens are cut off again


def special_ids(tokenizer: Any) -> set[int]:
    ids = set(getattr(tokenizer, "all_special_ids", None) or ())
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id"):
        if isinstance(i := getattr(tokenizer, name, None), int):
            ids.add(i)
    ids.update(getattr(tokenizer, "eos_token_ids", None) or ())
    return ids


def _plain(tokenizer: Any, text: str) -> list[int]:
    """Ids of `text` with no special token added or kept."""
    special = special_ids(tokenizer)
    return [int(i) for i in tokenizer.encode(text, add_special_tokens=False) if int(i) not in special]


def _mid_sentence(tokenizer: Any, word: str) -> list[int]:
    """The word's ids after other text and a space: encoded behind an anchor and cut off it,
    which holds for BPE and for SentencePiece's prefix space alike (unless the two merge)."""
    anchor = _plain(tokenizer, _ANCHOR)
    whole = _plain(tokenizer, f"{_ANCHOR} {word}")
    if whole[: len(anchor)] == anchor and len(whole) > len(anchor):
        return whole[len(anchor):]
    return _plain(tokenizer, " " + word)


def word_forms(tokenizer: Any, word: str, what: str) -> list[list[int]]:
    """The ids of a word mid-sentence, then at the start of a text (distinct forms only)."""
    word = word.strip()
    if not word:
        raise BadInput(f"{what}: an empty word")
    forms: list[list[int]] = []
    for ids in (_mid_sentence(tokenizer, word), _plain(tokenizer, word)):
        if ids and ids not in forms:
            forms.append(ids)
    if not forms:
        raise BadInput(f"{what}: '{word}' encodes to no ordinary token")
    return forms


def word_ids(tokenizer: Any, word: str, what: str) -> list[int]:
    """The word's mid-sentence ids (all of them when it is several tokens)."""
    return word_forms(tokenizer, word, what)[0]


def first_ids(tokenizer: Any, words: list[str] | tuple[str, ...], what: str) -> list[int]:
    """The first token of each form of each word, once each: what starts the word."""
    return sorted({form[0] for word in words for form in word_forms(tokenizer, word, what)})


def continuation_ids(tokenizer: Any, text: str, what: str) -> list[int]:
    """Text the model emits after its prompt, as the tokenizer reads it, no special tokens."""
    ids = _plain(tokenizer, text)
    if not ids:
        raise BadInput(f"{what}: {text!r} encodes to no ordinary token")
    return ids
