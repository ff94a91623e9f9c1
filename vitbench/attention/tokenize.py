"""Text to token ids: BERT's WordPiece tokenizer, built by vitbench, and transformers' own.

:class:`WordPieceTokenizer` follows BERT's reference tokenizer (Devlin et al. 2019) without
transformers: basic tokenization (drop control characters and U+FFFD, whitespace as spaces,
CJK ideographs as words, lower-casing and accent stripping for an uncased vocabulary, split on
whitespace and punctuation), then greedy longest-match-first WordPiece with ``##`` for a
piece inside a word, and ``[UNK]`` for a word of more than 100 characters or one the pieces
cannot spell. Special tokens are placed as BERT places them: ``[CLS] tokens [SEP]``. (Text
that spells a special token, "[MASK]", is split as any other text is, as the reference does.)

Its vocabulary is a file in BERT's ``vocab.txt`` format (one token per line, id = line
number; uncased unless some word piece has an upper-case letter, as ``bert-base-cased``'s
does), or the words of the input: the special tokens ``[PAD] [UNK] [CLS] [SEP] [MASK]`` first,
then each distinct word in order of first appearance.

:class:`HFTokenizer` gives a transformers tokenizer the same interface; it places its model's
own special tokens.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from vitbench.errors import VitbenchError

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
#: the special tokens a vocabulary made from the input's words starts with, in BERT's order
SPECIALS = (PAD, UNK, CLS, SEP, MASK)
#: a longer word is one [UNK], as in BERT
MAX_WORD_CHARS = 100
#: where the vocabulary of :func:`vocab_from_words` comes from
INPUT_WORDS = "the input's words"


class TextTokenizer(Protocol):
    """What the text analysis needs of a tokenizer."""

    cls_id: int | None  # the id of the class token ([CLS]), None when it has none
    sep_id: int | None  # the id of the separator ([SEP]), None when it has none

    def encode(self, text: str) -> tuple[list[int], list[str]]:
        """One sentence -> its ids and tokens, special tokens included."""
        ...

    def describe(self) -> str:
        """How the text was tokenized, in a few words."""
        ...


# -- basic tokenization ---------------------------------------------------------------------


def _is_whitespace(ch: str) -> bool:
    return ch in " \t\n\r" or unicodedata.category(ch) == "Zs"


def _is_control(ch: str) -> bool:
    return ch not in "\t\n\r" and unicodedata.category(ch).startswith("C")


def _is_punctuation(ch: str) -> bool:
    """ASCII symbols count as punctuation (as in BERT: "$", "^", "`"), and Unicode's P*."""
    cp = ord(ch)
    ascii_symbol = 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126
    return ascii_symbol or unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    """A CJK Unified Ideograph (the blocks BERT's tokenizer treats as one word each)."""
    blocks = (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
    )  # fmt: skip
    return any(lo <= cp <= hi for lo, hi in blocks)


def _clean(text: str) -> str:
    """Control characters, NUL and U+FFFD dropped; whitespace as spaces; CJK set apart."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp in (0, 0xFFFD) or _is_control(ch):
            continue
        out.append(" " if _is_whitespace(ch) else f" {ch} " if _is_cjk(cp) else ch)
    return "".join(out)


def _strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFD", word)
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def _split_punctuation(word: str) -> list[str]:
    """Each punctuation character a word of its own: "don't!" -> ["don", "'", "t", "!"]."""
    pieces: list[str] = []
    start_new = True
    for ch in word:
        if _is_punctuation(ch):
            pieces.append(ch)
            start_new = True
        else:
            if start_new:
                pieces.append("")
            pieces[-1] += ch
            start_new = False
    return pieces


def basic_tokenize(text: str, lower: bool = True) -> list[str]:
    """BERT's basic tokenization: the words and punctuation of ``text``."""
    words = []
    for word in _clean(text).split():
        if lower:
            word = _strip_accents(word.lower())
        words += _split_punctuation(word)
    return [w for w in words if w]


# -- WordPiece ------------------------------------------------------------------------------


def wordpiece(word: str, vocab: Mapping[str, int], unk: str = UNK) -> list[str]:
    """Greedy longest-match-first pieces of one word ("##" inside it); [UNK] when none fit."""
    if len(word) > MAX_WORD_CHARS:
        return [unk]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return [unk]
        pieces.append(piece)
        start = end
    return pieces


@dataclass(frozen=True)
class WordPieceTokenizer:
    """BERT's tokenizer over ``vocab`` (token -> id); ``source`` says where it came from."""

    vocab: Mapping[str, int]
    lower: bool = True
    source: str = INPUT_WORDS

    def __post_init__(self) -> None:
        missing = [t for t in (UNK, CLS, SEP) if t not in self.vocab]
        if missing:
            raise VitbenchError(f"vocabulary {self.source} lacks {', '.join(missing)}")

    @property
    def cls_id(self) -> int:
        return self.vocab[CLS]

    @property
    def sep_id(self) -> int:
        return self.vocab[SEP]

    @property
    def vocab_size(self) -> int:
        """Embedding rows the ids need: the largest id plus one."""
        return max(self.vocab.values()) + 1

    def encode(self, text: str) -> tuple[list[int], list[str]]:
        pieces = [p for w in basic_tokenize(text, self.lower) for p in wordpiece(w, self.vocab)]
        tokens = [CLS, *pieces, SEP]
        return [self.vocab[t] for t in tokens], tokens

    def describe(self) -> str:
        case = "uncased" if self.lower else "cased"
        return f"wordpiece over {self.source} ({len(self.vocab)} tokens, {case})"


def read_vocab(path: str | Path) -> WordPieceTokenizer:
    """The tokenizer of a BERT ``vocab.txt``: token i on line i (a repeated token keeps its
    last line, as BERT's loader does); cased when a word piece has an upper-case letter."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise VitbenchError(f"vocabulary file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise VitbenchError(f"cannot read vocabulary file {path}: {exc}") from None
    vocab = {token.strip(): i for i, token in enumerate(lines) if token.strip()}
    if not vocab:
        raise VitbenchError(f"vocabulary file {path} is empty")
    cased = any(t.lower() != t for t in vocab if not t.startswith("[") or not t.endswith("]"))
    return WordPieceTokenizer(vocab, lower=not cased, source=str(path))


def vocab_from_words(texts: Iterable[str]) -> WordPieceTokenizer:
    """The tokenizer whose vocabulary is :data:`SPECIALS`, then each distinct word of
    ``texts`` (basic-tokenized, uncased) in order of first appearance: every word one token."""
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for text in texts:
        for word in basic_tokenize(text):
            vocab.setdefault(word, len(vocab))
    return WordPieceTokenizer(vocab)


# -- transformers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class HFTokenizer:
    """A transformers tokenizer with the :class:`TextTokenizer` interface."""

    tokenizer: Any  # transformers.PreTrainedTokenizerBase
    name: str  # the model it belongs to, for describe()

    @property
    def cls_id(self) -> int | None:
        return self.tokenizer.cls_token_id

    @property
    def sep_id(self) -> int | None:
        return self.tokenizer.sep_token_id

    def encode(self, text: str) -> tuple[list[int], list[str]]:
        ids = list(self.tokenizer(text, add_special_tokens=True)["input_ids"])
        return ids, list(self.tokenizer.convert_ids_to_tokens(ids))

    def describe(self) -> str:
        return f"{self.name} (transformers)"
