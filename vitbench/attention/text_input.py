"""The text a token model reads: the sentences given, the tokenizer for the model, their ids.

Which tokenizer (first that applies):

1. an ``hf:`` model's own, from transformers (:func:`vitbench.zoo.hf.hf_tokenizer`: the hub
   id's tokenizer in the local cache; a bare model type such as ``hf:bert`` has none);
2. vitbench's WordPiece over the vocabulary file given (``vocab``, BERT's ``vocab.txt``);
3. for vitbench's own BERT (``scratch_bert_base``), WordPiece over the words of the input;

and none is an error. See :mod:`vitbench.attention.tokenize` for how each one tokenizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vitbench.attention.tokenize import (
    HFTokenizer,
    TextTokenizer,
    read_vocab,
    vocab_from_words,
)
from vitbench.errors import VitbenchError


@dataclass(frozen=True)
class TextSource:
    """Sentences to analyse: ``texts``, then each non-empty line of ``file``; ``vocab``, a
    vocabulary file for a model without a tokenizer of its own."""

    texts: tuple[str, ...] = ()
    file: Path | None = None
    vocab: Path | None = None

    def sentences(self) -> list[str]:
        """The texts, then the file's non-empty lines (stripped); an error for an empty text,
        a missing or empty file, or no text at all."""
        for i, text in enumerate(self.texts):
            if not text.strip():
                raise VitbenchError(f"text {i + 1} is empty: give a sentence")
        out = [t.strip() for t in self.texts] + self._lines()
        if not out:
            raise VitbenchError("no text to analyse: give texts or a file")
        return out

    def _lines(self) -> list[str]:
        if self.file is None:
            return []
        try:
            lines = Path(self.file).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise VitbenchError(f"text file not found: {self.file}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise VitbenchError(f"cannot read text file {self.file}: {exc}") from None
        lines = [line.strip() for line in lines if line.strip()]
        if not lines:
            raise VitbenchError(f"text file {self.file} holds no text")
        return lines

    def describe(self) -> str:
        """What was read: "2 texts", "file:PATH", or both joined by " + "."""
        parts = []
        if self.texts:
            parts.append(f"{len(self.texts)} text{'s' if len(self.texts) > 1 else ''}")
        if self.file is not None:
            parts.append(f"file:{self.file}")
        return " + ".join(parts)


def choose_tokenizer(
    model_name: str, vocab: Path | None, own_bert: bool, sentences: list[str]
) -> TextTokenizer:
    """The tokenizer for the model (see the module's doc); ``own_bert``: it is vitbench's
    BERT. An error when the model has none and no vocabulary is given."""
    from vitbench.zoo.hf import hf_tokenizer, is_hf

    if is_hf(model_name):
        tok = hf_tokenizer(model_name)
        if tok is not None:
            return HFTokenizer(tok, getattr(tok, "name_or_path", "") or model_name)
    if vocab is not None:
        return read_vocab(vocab)
    if own_bert:
        return vocab_from_words(sentences)
    raise VitbenchError(
        f"{model_name} has no tokenizer and no vocabulary was given: give a vocabulary file "
        "(vocab, BERT's vocab.txt format)"
    )


def model_vocab_size(net: nn.Module) -> int | None:
    """The rows of a token model's embedding: its ``vocab_size``, or its config's."""
    size = getattr(net, "vocab_size", None)
    return size if size is not None else getattr(getattr(net, "config", None), "vocab_size", None)


def encode_sentences(
    tokenizer: TextTokenizer, sentences: list[str], net: nn.Module, model_name: str
) -> list[tuple[torch.Tensor, list[str]]]:
    """Each sentence as (ids (1, N), tokens); an error for one with no word, one longer than
    the model's ``max_positions``, or an id outside its vocabulary."""
    limit, size = getattr(net, "max_positions", None), model_vocab_size(net)
    out = []
    for k, text in enumerate(sentences):
        ids, tokens = tokenizer.encode(text)
        specials = {tokenizer.cls_id, tokenizer.sep_id}
        if all(i in specials for i in ids):
            raise VitbenchError(f"sentence {k + 1} has no tokens once tokenized: {text!r}")
        if limit is not None and len(ids) > limit:
            raise VitbenchError(
                f"sentence {k + 1} has {len(ids)} tokens, more than the {limit} positions of "
                f"{model_name} (max_positions)"
            )
        outside = [i for i in ids if size is not None and not 0 <= i < size]
        if outside:
            raise VitbenchError(
                f"sentence {k + 1}: token id {outside[0]} lies outside the {size} tokens of "
                f"{model_name}'s vocabulary (vocab_size): the vocabulary does not fit the model"
            )
        out.append((torch.tensor([ids]), tokens))
    return out
