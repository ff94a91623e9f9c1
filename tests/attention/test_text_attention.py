"""analyze_text_attention on a tiny vitbench BERT, checked against an independent extraction,
transformers' tokenizer, finite differences and the store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vitbench.attention import AttentionOptions, extract_attention
from vitbench.attention.extract import find_attention_layers
from vitbench.attention.importance import HeadGates
from vitbench.attention.text import analyze_text_attention
from vitbench.attention.text_input import TextSource
from vitbench.attention.tokenize import SPECIALS
from vitbench.errors import VitbenchError
from vitbench.store import open_store, read_table
from vitbench.zoo import ModelSpec, create_model

TINY = dict(embed_dim=32, depth=2, num_heads=4, seq_len=16)
HF_TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
WORDS = ["the", "movie", "cinema", "at", "a", "##s", "film", "good", ".", "!", ","]
SENTENCES = ("The movie at the cinema.", "A good film, good movies!")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def vocab(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join([*SPECIALS, *WORDS]) + "\n", encoding="utf-8")
    return path


def _bert(num_classes: int = 3, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A tiny BERT over the test vocabulary whose attention is far from uniform."""
    torch.manual_seed(0)
    kw = dict(TINY, vocab_size=len(SPECIALS) + len(WORDS), cls_id=2, sep_id=3)
    net = create_model(ModelSpec("scratch_bert_base", num_classes=num_classes, kwargs=kw))
    with torch.no_grad():
        for block in net.blocks:
            block.attn.q.weight.mul_(8.0)  # sharper softmax than the 0.02 init gives
    return net.to(dtype).eval()


def _reference_ids(vocab, text):
    """ids and tokens from transformers' BertTokenizer on the same vocabulary file."""
    from transformers import BertTokenizer

    ref = BertTokenizer.from_pretrained(str(vocab.parent), local_files_only=True)
    ids = ref(text)["input_ids"]
    return torch.tensor([ids]), ref.convert_ids_to_tokens(ids)


def _matrix(rec):
    return np.array(rec["attention_matrix"])


def test_records_are_the_heads_attention_on_each_sentence(vocab):
    net = _bert()
    source = TextSource(SENTENCES, vocab=vocab)
    a = analyze_text_attention(net, source, AttentionOptions(importance="none"), model_name="b")
    assert len(a.records) == 2 * 2 * 4 and a.model == "b" and a.notes == []
    keys = [(r["sentence"], r["layer"], r["head"]) for r in a.records]
    assert keys == [(s, layer, h) for s in range(2) for layer in range(2) for h in range(4)]
    for k, text in enumerate(SENTENCES):
        ids, tokens = _reference_ids(vocab, text)
        assert a.sentences[k] == tokens
        _, maps = extract_attention(net, ids)  # per layer (1, heads, N, N)
        for rec in (r for r in a.records if r["sentence"] == k):
            m = _matrix(rec)
            want = maps[rec["layer"]][0, rec["head"]].numpy()
            assert (
                rec["text"] == text and rec["tokens"] == tokens and rec["n_tokens"] == len(ids[0])
            )
            assert np.allclose(m, want, atol=6e-5) and np.allclose(m.sum(1), 1, atol=1e-3)
            assert rec["cls_attention"] == pytest.approx(want[:, 0].mean(), abs=1e-6)
            assert rec["sep_attention"] == pytest.approx(want[:, -1].mean(), abs=1e-6)
            assert rec["self_attention"] == pytest.approx(np.diag(want).mean(), abs=1e-6)
            p = want / want.sum(1, keepdims=True)
            entropy = -(p * np.log(p)).sum(1).mean()
            assert rec["entropy"] == pytest.approx(entropy, rel=1e-4)
            assert rec["entropy_norm"] == pytest.approx(entropy / np.log(len(p)), rel=1e-4)
            assert rec["input_kind"] == "text" and rec["importance"] is None


def test_top_pairs_are_the_largest_weights_between_two_tokens(vocab):
    net = _bert()
    a = analyze_text_attention(net, TextSource(SENTENCES[:1], vocab=vocab), _opts("none"))
    ids, tokens = _reference_ids(vocab, SENTENCES[0])
    _, maps = extract_attention(net, ids)
    n = len(tokens)
    for rec in a.records:
        w = maps[rec["layer"]][0, rec["head"]].numpy()
        pairs = sorted((w[i, j], i, j) for i in range(n) for j in range(n) if i != j)[::-1]
        assert [[f, t] for f, t, _ in rec["top_pairs"]] == [
            [tokens[i], tokens[j]] for _, i, j in pairs[:5]
        ]
        assert [wt for *_, wt in rec["top_pairs"]] == pytest.approx(
            [v for v, *_ in pairs[:5]], abs=5e-5
        )


def test_gradient_importance_matches_finite_differences_and_is_normalised_per_layer(vocab):
    net = _bert(dtype=torch.float64)
    a = analyze_text_attention(net, TextSource(SENTENCES, vocab=vocab), _opts("gradient"))
    layers = find_attention_layers(net)
    fd = np.zeros((2, 4))  # mean over sentences of |d loss / d gate| by central differences
    eps = 1e-5
    for text in SENTENCES:
        ids, _ = _reference_ids(vocab, text)
        with torch.no_grad(), HeadGates(layers) as gates:
            label = net(ids).argmax(-1)
            for i in range(2):
                for h in range(4):
                    loss = []
                    for g in (1 + eps, 1 - eps):
                        gates.gates[i][h] = g
                        loss.append(float(F.cross_entropy(net(ids), label)))
                    gates.gates[i][h] = 1.0
                    fd[i, h] += abs(loss[0] - loss[1]) / (2 * eps) / len(SENTENCES)
    for rec in a.records:
        assert rec["importance_grad"] == pytest.approx(fd[rec["layer"], rec["head"]], rel=1e-3)
        assert rec["labels"] == "predicted"
    for s in range(2):
        for layer in range(2):
            imp = [r["importance"] for r in a.records if (r["sentence"], r["layer"]) == (s, layer)]
            assert np.linalg.norm(imp) == pytest.approx(1.0)
            assert np.allclose(imp, fd[layer] / np.linalg.norm(fd[layer]), rtol=1e-3)


def test_a_named_bert_is_sized_to_the_words_of_the_input_and_clustered(tmp_path):
    seen = []
    opts = AttentionOptions(num_classes=2, model_kwargs=TINY, importance="both", seed=3)
    a = analyze_text_attention(
        "scratch_bert_base", TextSource(SENTENCES), opts, on_progress=lambda *p: seen.append(p)
    )
    assert seen == [(1, 2, "attention"), (2, 2, "attention"), (0, 1, "masking heads one at a time")]
    rec = a.records[0]
    assert rec["tokenizer"] == "wordpiece over the input's words (16 tokens, uncased)"
    assert a.sentences[1] == ["[CLS]", "a", "good", "film", ",", "good", "movies", "!", "[SEP]"]
    # the same seed builds the same model only at the vocabulary's size, 5 specials + 11 words
    with torch.random.fork_rng():
        torch.manual_seed(3)
        kw = dict(TINY, vocab_size=16, cls_id=2, sep_id=3)
        net = create_model(ModelSpec("scratch_bert_base", num_classes=2, kwargs=kw))
    _, maps = extract_attention(net, torch.tensor([[2, 5, 6, 7, 5, 8, 9, 3]]))
    assert np.allclose(_matrix(rec), maps[0][0, 0].numpy(), atol=6e-5)
    for r in a.records:
        same_head = [q for q in a.records if (q["layer"], q["head"]) == (r["layer"], r["head"])]
        assert {(q["cluster"], q["proj_x"], q["importance_mask"]) for q in same_head} == {
            (r["cluster"], r["proj_x"], r["importance_mask"])
        }
    assert len({r["cluster"] for r in a.records}) >= 2


def test_rows_tokens_and_heatmaps_round_trip_through_the_store(tmp_path, vocab):
    url = f"sqlite:///{tmp_path}/store.db"
    with open_store(url) as st:
        a = analyze_text_attention(
            _bert(),
            TextSource(SENTENCES, vocab=vocab),
            _opts("none"),
            store=st,
            plots_dir=tmp_path,
            model_name="tiny/bert",
        )
    rows = read_table(url, "attention")
    assert len(rows) == 16 and set(rows["run_id"]) == {a.run_id}
    assert sorted(set(rows["sentence"])) == [0, 1]
    for _, row in rows.iterrows():
        rec = a.records[int(row["sentence"]) * 8 + int(row["layer"]) * 4 + int(row["head"])]
        assert json.loads(row["tokens"]) == rec["tokens"]
        assert json.loads(row["attention_matrix"]) == rec["attention_matrix"]
        assert json.loads(row["top_pairs"]) == [list(p) for p in rec["top_pairs"]]
        assert row["heatmap_figure"] == f"tiny_bert_s{row['sentence']}_layer{row['layer']}.png"
    figures = read_table(url, "figures")
    assert sorted(figures["name"]) == sorted(p.name for p in a.figures.values())
    assert len(figures) == 4
    for name, data in zip(figures["name"], figures["data"], strict=True):
        assert bytes(data).startswith(PNG) and bytes(data) == (tmp_path / name).read_bytes()


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_an_hf_bert_reads_with_its_own_tokenizer_as_transformers_reports(vocab, monkeypatch, attn):
    from transformers import BertTokenizer

    own = BertTokenizer.from_pretrained(
        str(vocab.parent), local_files_only=True
    )  # stands in for a cached hub tokenizer
    monkeypatch.setattr("vitbench.zoo.hf.hf_tokenizer", lambda name: own)
    torch.manual_seed(0)
    kwargs = dict(HF_TINY, attn_implementation=attn)
    net = create_model(ModelSpec("hf:bert", num_classes=2, kwargs=kwargs))
    a = analyze_text_attention(net, TextSource(SENTENCES), _opts("gradient"), model_name="hf:bert")
    assert a.records[0]["tokenizer"] == f"{vocab.parent} (transformers)"
    assert all(r["importance"] >= 0 for r in a.records)  # gated at attention.output.dense
    net.hf.set_attn_implementation("eager")  # transformers reports weights only when eager
    for k, text in enumerate(SENTENCES):
        ids, tokens = _reference_ids(vocab, text)
        assert a.sentences[k] == tokens
        with torch.no_grad():
            reported = net.hf(input_ids=ids, output_attentions=True).attentions
        for rec in (r for r in a.records if r["sentence"] == k):
            want = reported[rec["layer"]][0, rec["head"]].numpy()
            assert np.allclose(_matrix(rec), want, atol=6e-5)


def test_sinusoidal_positions_set_no_length_limit():
    kw = dict(TINY, pos_embed="sinusoidal")
    net = create_model(ModelSpec("scratch_bert_base", kwargs=kw))
    assert net.max_positions is None
    a = analyze_text_attention(net, TextSource(("the movie " * 8,)), _opts("none"))
    assert a.records[0]["n_tokens"] == 18 > TINY["seq_len"]
    assert a.notes == [  # a built module's weights may be trained: the words' ids are not theirs
        "the vocabulary is the input's words: trained weights read ids that mean nothing to "
        "them (give the vocabulary they were trained with)"
    ]


class _NoTokenizer(nn.Module):
    """A token model that is not vitbench's BERT, so has no tokenizer of its own."""

    input_kind = "tokens"
    num_classes = 3

    def __init__(self) -> None:
        super().__init__()
        self.bert = _bert()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids)


@pytest.mark.parametrize(
    ("model", "texts", "opts", "message"),
    [
        ("bert", ("fine", "  "), {}, "text 2 is empty"),
        ("bert", ("the movie " * 8,), {}, "sentence 1 has 18 tokens, more than the 16 positions"),
        ("other", ("the movie",), {}, "has no tokenizer and no vocabulary was given"),
        ("bert", ("the movie",), dict(tome=[4]), "tome: options for images"),
        ("bert", ("the movie",), dict(num_classes=0), "give num_classes, or importance 'none'"),
        ("bert", ("the movie",), dict(model_kwargs=dict(TINY, vocab_size=6)), "id 6 lies outside"),
        ("vit", ("the movie",), {}, "reads images, not text"),
        ("hf:bert", ("the movie",), {}, "hf:bert has no tokenizer and no vocabulary"),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(tmp_path, model, texts, opts, message):
    if model == "bert":
        net, opts = "scratch_bert_base", dict(model_kwargs=TINY, num_classes=3) | opts
    elif model == "hf:bert":  # a model type: no tokenizer of its own
        net, opts = model, dict(model_kwargs=HF_TINY)
    else:
        net = _NoTokenizer() if model == "other" else "scratch_vit_tiny_patch16_224"
    url = f"sqlite:///{tmp_path}/store.db"
    with open_store(url) as st:
        with pytest.raises(VitbenchError, match=message) as err:
            analyze_text_attention(net, TextSource(texts), AttentionOptions(**opts), store=st)
        assert "\n" not in str(err.value)
        assert not any(st.counts().values())
    assert not (tmp_path / "plots").exists()


def test_text_sources_read_texts_then_the_files_lines(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("first line\n\n  second line  \n", encoding="utf-8")
    source = TextSource(("given",), file=path)
    assert source.sentences() == ["given", "first line", "second line"]
    assert source.describe() == f"1 text + file:{path}"
    for bad, message in [
        (TextSource(), "no text to analyse"),
        (TextSource(file=tmp_path / "none.txt"), "text file not found"),
        (TextSource(file=tmp_path / "empty.txt"), "holds no text"),
    ]:
        (tmp_path / "empty.txt").write_text("\n \n", encoding="utf-8")
        with pytest.raises(VitbenchError, match=message):
            bad.sentences()


def _opts(importance: str) -> AttentionOptions:
    return AttentionOptions(importance=importance)
