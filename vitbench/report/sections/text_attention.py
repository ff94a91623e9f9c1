"""The text-attention section, from ``attention`` rows with ``input_kind`` text (one row per
sentence, layer and head, written by `vitbench analyze attention MODEL --text ...`).

For each model's latest run: a table per layer of normalised entropy and attention to [CLS],
[SEP] and the token itself; then, for its first sentences, heatmaps of every head of the first
and the last layer (drawn from the stored ``attention_matrix``) and each head's strongest pairs.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from vitbench.files import file_stem
from vitbench.report.context import Context
from vitbench.report.environment import mixed_warning
from vitbench.report.tables import column_or_none, fmt, parse_json_cell

#: sentences shown per model (heatmaps and pairs); the layer table averages over all of them
MAX_SENTENCES = 3
#: strongest pairs shown per head
TOP_PAIRS = 3
#: the per-layer means: stored column -> printed name
LAYER_MEANS = {
    "entropy_norm": "entropy / ln(tokens)",
    "cls_attention": "to [CLS]",
    "sep_attention": "to [SEP]",
    "self_attention": "to itself",
}


def text_rows(df: pd.DataFrame) -> pd.Series:
    """Which attention rows were measured on text (the rest are images)."""
    return column_or_none(df, "input_kind") == "text"


def _latest_runs(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(model, rows of its latest run) per model, in the order the models were first stored."""
    out = []
    for model, group in df.groupby("model", sort=False):
        order = group.sort_values("timestamp", kind="stable") if "timestamp" in group else group
        run = order.iloc[-1]["run_id"]
        out.append((str(model), group[group["run_id"] == run]))
    return out


def add_text_attention(ctx: Context, df: pd.DataFrame) -> None:
    text = df[text_rows(df)]
    if text.empty:
        return
    ctx.doc.heading("Attention on text")
    ctx.doc.paragraph(
        "Per layer, averaged over heads, sentences and query tokens: the normalised entropy of "
        "the attention rows (1: uniform over the tokens, 0: one token) and the weight on [CLS], "
        "on [SEP] and on the token itself. Then, for the first sentences of each model, "
        "heatmaps of every head in the first and the last layer (query tokens down, key "
        f"tokens across) and each head's {TOP_PAIRS} strongest pairs of different tokens."
    )
    ctx.doc.warning(mixed_warning(ctx.envs, text, "This section"))
    for model, rows in _latest_runs(text):
        _model(ctx, model, rows)


def _model(ctx: Context, model: str, rows: pd.DataFrame) -> None:
    first = rows.iloc[0]
    sentences = sorted(rows["sentence"].dropna().astype(int).unique())
    ctx.doc.heading(model, 3)
    ctx.doc.paragraph(
        f"Run {first['run_id']}, {fmt(first.get('weights'))} weights, {len(sentences)} "
        f"sentence(s), tokenized by {fmt(first.get('tokenizer'))}."
    )
    ctx.doc.table(_layer_table(rows))
    for sentence in sentences[:MAX_SENTENCES]:
        _sentence(ctx, model, rows[rows["sentence"] == sentence])


def _layer_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per layer: the mean of each of LAYER_MEANS over heads and sentences."""
    columns = [c for c in LAYER_MEANS if c in rows and rows[c].notna().any()]
    means = rows.groupby("layer")[columns].mean().sort_index()
    table = pd.DataFrame({"layer": means.index.astype(int).astype(str)})
    for column in columns:
        table[LAYER_MEANS[column]] = [fmt(v, 3) for v in means[column]]
    return table


def _sentence(ctx: Context, model: str, rows: pd.DataFrame) -> None:
    """One sentence: heatmaps of the first and last layer's heads, and their strongest pairs."""
    # imported here: a report without sentences loads nothing of vitbench.attention
    from vitbench.attention.text_plots import plot_heatmaps

    first = rows.iloc[0]
    tokens = parse_json_cell(first["tokens"])
    index = int(first["sentence"])
    ctx.doc.paragraph(f'Sentence {index}: "{first["text"]}" ({len(tokens)} tokens).')
    ctx.figures.mkdir(parents=True, exist_ok=True)
    layers = sorted({int(rows["layer"].min()), int(rows["layer"].max())})
    for layer in layers:
        heads = rows[rows["layer"] == layer].sort_values("head")
        matrices = np.array([parse_json_cell(m) for m in heads["attention_matrix"]])  # (H, N, N)
        name = f"text_attention_{file_stem(model)}_{first['run_id']}_s{index}_l{layer}"
        title = f"{model}, layer {layer}: {textwrap.shorten(first['text'], 60, placeholder='...')}"
        path = plot_heatmaps(matrices, tokens, title, ctx.figure(name))
        ctx.doc.image(path, f"attention of every head in layer {layer}, sentence {index}")
    ctx.doc.table(_pairs_table(rows[rows["layer"].isin(layers)]))


def _pairs_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Layer, head and its strongest pairs, 'from -> to weight' joined by ';'."""
    ordered = rows.sort_values(["layer", "head"])
    pairs = [(parse_json_cell(p) or [])[:TOP_PAIRS] for p in ordered["top_pairs"]]
    return pd.DataFrame(
        {
            "layer": ordered["layer"].astype(int).astype(str),
            "head": ordered["head"].astype(int).astype(str),
            "strongest pairs (query -> key weight)": [
                "; ".join(f"{a} -> {b} {w:.2f}" for a, b, w in head) for head in pairs
            ],
        }
    )
