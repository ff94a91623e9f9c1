"""`vitbench analyze attention` on sentences (--text, --text-file, --vocab) and the worked
example (--qkv): what it prints, what it stores, and its one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn.functional import scaled_dot_product_attention

from vitbench.cli import main
from vitbench.store import read_table

BERT = ["scratch_bert_base", "--model-kwargs", "embed_dim=32,depth=2,num_heads=4,seq_len=16"]
TINY_BERT = [*BERT, "--num-classes", "2"]
LECTURE = {"q": [[1, 0], [0, 1]], "k": [[1, 0], [0, 1]], "v": [[1, 2], [3, 4]]}


def run(args: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", "attention", *args])
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


@pytest.fixture
def qkv_file(tmp_path):
    path = tmp_path / "qkv.json"
    path.write_text(json.dumps(LECTURE))
    return path


def test_qkv_prints_the_lectures_example(qkv_file, capsys):
    code, out, err = run(["--qkv", str(qkv_file)], capsys)
    assert code == 0, err
    first = next(line for line in out.splitlines() if line.lstrip("│ ").startswith("0 "))
    assert "0.7071  0.0000" in first and "0.6698  0.3302" in first and "1.6605  2.6605" in first


def test_qkv_as_json_equals_torch(tmp_path, capsys):
    rng = np.random.default_rng(1)
    q, k, v = rng.normal(size=(3, 4)), rng.normal(size=(5, 4)), rng.normal(size=(5, 2))
    path = tmp_path / "qkv.json"
    path.write_text(json.dumps({"q": q.tolist(), "k": k.tolist(), "v": v.tolist()}))
    code, out, err = run(["--qkv", str(path), "--format", "json"], capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    expected = scaled_dot_product_attention(*(torch.from_numpy(x)[None] for x in (q, k, v)))[0]
    np.testing.assert_allclose([r["context"] for r in rows], expected.numpy(), rtol=1e-12)


def _printed_pairs(out: str) -> dict[tuple[int, int], str]:
    """(layer, head) -> the strongest pair printed in the table of sentence 0."""
    table = out[: out.index("sentence 1:")]
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in table.splitlines()]
    return {(int(r[0]), int(r[1])): r[-1] for r in rows if r and r[0].isdigit()}


def test_a_sentence_gives_a_table_per_sentence_and_stores_its_heads(tmp_path, capsys):
    out_dir = tmp_path / "results"
    args = [*TINY_BERT, "--text", "I like pizza", "--out", str(out_dir)]
    code, out, err = run([*args, "--text", "the film was good"], capsys)
    assert code == 0, err
    stored = read_table(out_dir, "attention")
    assert len(stored) == 2 * 2 * 4  # sentences x layers x heads
    assert "sentence 0: [CLS] i like pizza [SEP]" in out
    assert "sentence 1: [CLS] the film was good [SEP]" in out
    printed = _printed_pairs(out)
    assert len(printed) == 2 * 4
    # each head's printed pair is the largest weight off the diagonal of the matrix it stored
    for rec in stored[stored["sentence"] == 0].to_dict("records"):
        tokens, weights = json.loads(rec["tokens"]), np.array(json.loads(rec["attention_matrix"]))
        source, _, target, weight = printed[rec["layer"], rec["head"]].split()
        np.fill_diagonal(weights, -1)
        strongest = weights[tokens.index(source), tokens.index(target)]
        assert strongest == pytest.approx(float(weight), abs=0.005)
        assert strongest >= weights.max() - 1e-3  # rounding: random heads are near uniform


def test_a_text_file_as_json_lines(tmp_path, capsys):
    text = tmp_path / "sentences.txt"
    text.write_text("I like pizza\n\nthe film was good\n")
    code, out, err = run(
        [*TINY_BERT, "--text-file", str(text), "--no-save", "--format", "json"], capsys
    )
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["text"] for r in rows[:: 2 * 4]] == ["I like pizza", "the film was good"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*TINY_BERT, "--text", "  "], "text 1 is empty"),
        ([*TINY_BERT, "--text", "a", "--images", "."], "choose text (--text, --text-file) or"),
        ([*TINY_BERT, "--vocab", "vocab.txt"], "--vocab tokenizes text"),
        ([*TINY_BERT, "--text-file", "absent.txt"], "text file not found"),
        (["--qkv", "qkv.json", "scratch_bert_base"], "--qkv works its file alone"),
        (["--qkv", "qkv.json", "--text", "a"], "--qkv works its file alone"),
        (["--text", "a"], "give a MODEL"),
        (["--qkv", "absent.json"], "qkv file not found"),
    ],
)
def test_bad_input_is_one_line_before_the_store_is_opened(args, message, tmp_path, capsys):
    out_dir = tmp_path / "results"
    code, out, err = run([*args, "--out", str(out_dir)], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out_dir.exists() and out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*TINY_BERT, "--text", " ".join(["word"] * 20)], "22 tokens, more than the 16 positions"),
        (["hf:bert", "--num-classes", "2", "--text", "I like pizza"], "has no tokenizer"),
    ],
)
def test_refusals_after_the_model_is_known_store_nothing(args, message, tmp_path, capsys):
    out_dir = tmp_path / "results"
    code, _, err = run([*args, "--out", str(out_dir)], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert read_table(out_dir, "attention").empty
