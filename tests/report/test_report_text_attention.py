"""The text-attention section: per-layer means, heatmaps and strongest pairs of stored sentences."""

from __future__ import annotations

from markdown_checks import image_links, markdown_tables
from report_fixtures import attention_rows, env, write
from test_report_imports import TORCH, loaded_by

from vitbench.report import build_report

TOKENS = ["[CLS]", "i", "like", "pizza", "[SEP]"]
#: a head's stored pairs, strongest first; the report shows the first three
PAIRS = [["i", "like", 0.9], ["like", "pizza", 0.8], ["pizza", "i", 0.7], ["i", "[SEP]", 0.1]]
#: the other heads' pairs: fewer than three
FEW = [["[CLS]", "i", 0.5], ["i", "like", 0.3]]
#: normalised entropy of head 0 and head 1 in layers 0 and 1: layer means 0.300 and 0.800
ENTROPY = {(0, 0): 0.2, (0, 1): 0.4, (1, 0): 0.6, (1, 1): 1.0}


def _matrix(shift: int) -> list[list[float]]:
    """Each query puts 0.9 on the token ``shift`` places on and 0.1 on itself."""
    n = len(TOKENS)
    rows = [[0.0] * n for _ in range(n)]
    for i in range(n):
        rows[i][i] += 0.1
        rows[i][(i + shift) % n] += 0.9
    return rows


def text_rows(model: str, sentences: list[str], timestamp: str) -> list[dict]:
    """One row per sentence, layer (2) and head (2) in analyze_text_attention's form."""
    return [
        {
            "model": model,
            "sentence": s,
            "layer": layer,
            "head": head,
            "input_kind": "text",
            "text": text,
            "tokens": TOKENS,
            "n_tokens": len(TOKENS),
            "entropy_norm": ENTROPY[layer, head],
            "cls_attention": 0.1 * (layer + 1),
            "sep_attention": 0.05,
            "self_attention": 0.1,
            "top_pairs": PAIRS if (layer, head) == (1, 1) else FEW,
            "attention_matrix": _matrix(head + 1),
            "weights": "random",
            "tokenizer": "wordpiece over the input's words",
            "timestamp": timestamp,
        }
        for s, text in enumerate(sentences)
        for layer in range(2)
        for head in range(2)
    ]


def write_text_store(path):
    """An image analysis, and two text runs of one BERT (the later one written first)."""
    write(attention_rows("vit_small_patch16_224", "random"), path, "attention", "img", env())
    late = [f"sentence {i}" for i in range(4)]
    write(text_rows("scratch_bert_base", late, "2026-02-01"), path, "attention", "late", env())
    early = ["an older run"]
    write(text_rows("scratch_bert_base", early, "2026-01-01"), path, "attention", "early", env())
    return path


def test_the_section_shows_the_latest_run_its_means_pairs_and_heatmaps(tmp_path):
    report = build_report([write_text_store(tmp_path / "results")], tmp_path / "out")
    text = report.read_text()
    section = text[text.index("## Attention on text") :]
    assert "an older run" not in section and "Run late" in section
    tables = markdown_tables(section)
    layers = tables[0].set_index("layer")
    assert layers["entropy / ln(tokens)"].tolist() == ["0.300", "0.800"]
    assert layers["to [CLS]"].tolist() == ["0.100", "0.200"]
    pairs = tables[1].set_index(["layer", "head"])["strongest pairs (query -> key weight)"]
    assert pairs["1", "1"] == "i -> like 0.90; like -> pizza 0.80; pizza -> i 0.70"
    assert pairs["0", "0"] == "[CLS] -> i 0.50; i -> like 0.30"
    links = image_links(section)
    # three of the four sentences, each the first and the last layer
    assert len(links) == 6 and all((report.parent / link).is_file() for link in links)
    assert "figures/text_attention_scratch_bert_base_late_s2_l1.png" in links
    assert 'Sentence 3: "sentence 3"' not in section


def test_text_rows_stay_out_of_the_image_section(tmp_path):
    report = build_report([write_text_store(tmp_path / "results")], tmp_path / "out")
    text = report.read_text()
    image = text[text.index("## Attention") : text.index("## Attention on text")]
    summary = next(t for t in markdown_tables(image) if "analysis" in t.columns)
    assert summary["analysis"].tolist() == ["vit_small_patch16_224 (random)"]


def test_no_text_rows_no_section(tmp_path):
    path = tmp_path / "results"
    write(attention_rows("vit_small_patch16_224", "random"), path, "attention", "img", env())
    assert "Attention on text" not in build_report([path], tmp_path / "out").read_text()


def test_a_report_with_sentences_loads_no_torch(tmp_path):
    store, out = str(write_text_store(tmp_path / "results")), str(tmp_path / "out")
    code = f"from vitbench.report import build_report; build_report([{store!r}], {out!r})"
    assert loaded_by(code, TORCH) == []


def test_a_stored_analysis_of_a_tiny_bert_is_reported(tmp_path):
    from vitbench.attention import AttentionOptions
    from vitbench.attention.text import analyze_text_attention
    from vitbench.attention.text_input import TextSource
    from vitbench.store import open_store

    kwargs = dict(embed_dim=32, depth=2, num_heads=4, seq_len=16)
    opts = AttentionOptions(importance="none", model_kwargs=kwargs)
    with open_store(tmp_path / "results") as st:
        source = TextSource(("I like pizza",))
        analysis = analyze_text_attention("scratch_bert_base", source, opts, store=st)
    text = build_report([tmp_path / "results"], tmp_path / "out").read_text()
    section = text[text.index("## Attention on text") :]
    pairs = markdown_tables(section)[1].set_index(["layer", "head"]).iloc[:, 0]
    for rec in analysis.records:
        matrix = rec["attention_matrix"]
        cell = pairs[str(rec["layer"]), str(rec["head"])]
        # each pair printed names the weight of its query row and key column in the matrix
        for pair in cell.split("; "):
            source_token, _, target_token, weight = pair.split()
            i, j = TOKENS.index(source_token), TOKENS.index(target_token)
            assert abs(matrix[i][j] - float(weight)) <= 0.005
        assert len(cell.split("; ")) == 3
    links = image_links(section)
    assert len(links) == 2 and all((tmp_path / "out" / link).is_file() for link in links)
