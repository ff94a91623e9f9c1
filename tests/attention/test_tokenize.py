"""vitbench's BERT tokenizer against transformers' BertTokenizer on the same vocabulary file."""

from __future__ import annotations

import re

import pytest

from vitbench.attention.tokenize import (
    SPECIALS,
    HFTokenizer,
    basic_tokenize,
    read_vocab,
    vocab_from_words,
)
from vitbench.errors import VitbenchError

VOCAB = [*SPECIALS, "the", "movie", "cinema", "##s", "un", "##aff", "##able", "cafe", "a"]
VOCAB += [".", ",", "!", "'", "t", "don", "中", "$", "5", "##0", "naive", "play", "##ing"]
CASED = [*SPECIALS, "The", "the", "movie", "Café", "##s", "!", "Paris", "café"]

SENTENCES = [
    "The movie, at the cinema!",  # punctuation
    "Unaffable movies don't play",  # "##" pieces, an apostrophe, a word that is [UNK]
    "  Café naïve\tcafe\n$50 playing  ",  # accents, tabs and newlines, "##" digits
    "中文 movie" + "a" * 101,  # CJK characters as words, a word over 100 characters
    "zzz \x00qq\ufffd the\u200b",  # unknown words, NUL, U+FFFD, a zero-width format char
]


def _vocab_file(tmp_path, tokens):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return path


def _transformers(path, **kwargs):
    from transformers import BertTokenizer

    return BertTokenizer.from_pretrained(str(path.parent), **kwargs)


@pytest.mark.parametrize("text", SENTENCES)
def test_uncased_vocabulary_tokenizes_as_transformers_bert(tmp_path, text):
    path = _vocab_file(tmp_path, VOCAB)
    ref = _transformers(path)
    ids = ref(text)["input_ids"]
    assert read_vocab(path).encode(text) == (ids, ref.convert_ids_to_tokens(ids))


@pytest.mark.parametrize("text", ["The Café movies!", "the café, Paris", "THE MOVIE"])
def test_cased_vocabulary_keeps_case_and_accents_as_transformers_bert(tmp_path, text):
    path = _vocab_file(tmp_path, CASED)
    ref = _transformers(path, do_lower_case=False)
    ids = ref(text)["input_ids"]
    tok = read_vocab(path)
    assert not tok.lower and tok.encode(text) == (ids, ref.convert_ids_to_tokens(ids))


def test_special_tokens_frame_the_sentence_with_the_vocabulary_ids(tmp_path):
    tok = read_vocab(_vocab_file(tmp_path, VOCAB))
    ids, tokens = tok.encode("the movie")
    assert tokens == ["[CLS]", "the", "movie", "[SEP]"]
    assert ids == [2, 5, 6, 3] and (tok.cls_id, tok.sep_id) == (2, 3)


def test_words_of_the_input_are_the_specials_then_each_new_word(tmp_path):
    tok = vocab_from_words(["The movie, the cinema.", "A movie!"])
    words = ["the", "movie", ",", "cinema", ".", "a", "!"]
    assert list(tok.vocab) == [*SPECIALS, *words] and tok.vocab_size == len(SPECIALS) + 7
    # the same vocabulary written as a file gives transformers the same ids
    ref = _transformers(_vocab_file(tmp_path, list(tok.vocab)))
    for text in ("The movie, the cinema.", "A movie!"):
        ids = ref(text)["input_ids"]
        assert tok.encode(text) == (ids, ref.convert_ids_to_tokens(ids))
    assert "wordpiece over the input's words" in tok.describe()


def test_basic_tokenization_splits_punctuation_and_cjk():
    assert basic_tokenize("Don't stop—naïve 中文!") == [
        "don", "'", "t", "stop", "—", "naive", "中", "文", "!",
    ]  # fmt: skip


def test_transformers_adapter_uses_the_tokenizers_own_specials(tmp_path):
    ref = _transformers(_vocab_file(tmp_path, VOCAB))
    tok = HFTokenizer(ref, "bert-test")
    ids, tokens = tok.encode("the movies")
    assert tokens == ["[CLS]", "the", "movie", "##s", "[SEP]"] and ids == [2, 5, 6, 8, 3]
    assert (tok.cls_id, tok.sep_id) == (2, 3) and tok.describe() == "bert-test (transformers)"


@pytest.mark.parametrize(
    ("lines", "message"),
    [(None, "not found"), ([], "is empty"), (["[PAD]", "the"], "lacks [UNK], [CLS], [SEP]")],
)
def test_bad_vocabulary_files_are_one_line_errors(tmp_path, lines, message):
    path = tmp_path / "vocab.txt" if lines is None else _vocab_file(tmp_path, lines)
    with pytest.raises(VitbenchError, match=re.escape(message)) as err:
        read_vocab(path)
    assert "\n" not in str(err.value)
