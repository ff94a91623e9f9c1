"""The attention section from the ``attention`` table (one row per analysed model, layer, head).

Mean attention distance against depth (the ViT paper's figure), an entropy heatmap, head
importance, head clusters in their 2-D projection, and the rollout overlays that
`vitbench analyze attention` stored in the ``figures`` table (named by ``rollout_figure``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from vitbench.missing import is_missing
from vitbench.plotting import layer_head_grid
from vitbench.report import plots
from vitbench.report.context import Context
from vitbench.report.environment import ENV_COLUMN, mixed_warning
from vitbench.report.sections.text_attention import text_rows
from vitbench.report.tables import fmt

#: columns that name one analysis (a model with its weights, on its images)
ANALYSIS = ("run_id", "model", "weights", "checkpoint", ENV_COLUMN)


def _weights(row: pd.Series) -> str:
    """'random', 'pretrained' or 'checkpoint'."""
    return "?" if is_missing(row.get("weights")) else str(row["weights"])


def _weights_file(row: pd.Series) -> str:
    """The checkpoint's file with its folder (the training run), or the kind of weights."""
    if is_missing(row.get("checkpoint")):
        return _weights(row)
    path = Path(str(row["checkpoint"]))
    return f"{path.parent.name}/{path.name}"


def _analyses(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One (label, rows) per analysis: model and weights, plus the run when that repeats."""
    keys = [k for k in ANALYSIS if k in df]
    groups = [g for _, g in df.groupby(keys, sort=False, dropna=False)]
    names = [(g.iloc[0]["model"], _weights(g.iloc[0])) for g in groups]
    out = []
    for (model, weights), group in zip(names, groups, strict=True):
        label = f"{model} ({weights})"
        if names.count((model, weights)) > 1:
            label += f" run {group.iloc[0].get('run_id')}"
        out.append((label, group))
    return out


def _grid(group: pd.DataFrame, column: str) -> np.ndarray:
    """Layer x head values of one analysis."""
    return layer_head_grid(group.to_dict("records"), column)


def _summary(label: str, group: pd.DataFrame) -> dict[str, str]:
    by_layer = group.groupby("layer")["mean_distance_px"].mean().sort_index()
    first = group.iloc[0]
    row = {"analysis": label, "weights": _weights_file(first)}
    if not is_missing(first.get("img_size")):
        row["input (px)"] = str(first["img_size"])
    if not is_missing(first.get("n_images")):
        row["images"] = f"{int(first['n_images'])} from {first.get('images', '?')}"
    row.update(
        {
            "layers x heads": f"{group['layer'].nunique()} x {group['head'].nunique()}",
            "distance, first layer (px)": fmt(by_layer.iloc[0], 1),
            "distance, last layer (px)": fmt(by_layer.iloc[-1], 1),
            "head distances (px)": f"{fmt(group['mean_distance_px'].min(), 1)} to "
            f"{fmt(group['mean_distance_px'].max(), 1)}",
        }
    )
    for column, name in (
        ("entropy_norm", "normalised entropy"),
        ("cls_attention", "attention to class token"),
        ("cluster", "head clusters"),
    ):
        if column in group and group[column].notna().any():
            value = group[column].nunique() if column == "cluster" else group[column].mean()
            row[name] = str(value) if column == "cluster" else fmt(value, 3)
    return row


def add_attention(ctx: Context, df: pd.DataFrame) -> None:
    df = df[~text_rows(df)]  # sentences have their own section
    if "mean_distance_px" not in df or df["mean_distance_px"].notna().sum() == 0:
        return
    analyses = _analyses(df)
    doc = ctx.doc
    doc.heading("Attention")
    doc.paragraph(
        "Per head: the mean attention distance (pixels from a query patch to the patches it "
        "attends to, weighted by attention, averaged over query patches and images, as in the "
        "ViT paper) against depth, and the entropy of its attention rows over ln(keys) "
        "(1: uniform, 0: a single key). Averages in the table are over all heads."
    )
    doc.warning(mixed_warning(ctx.envs, df, "This section"))
    doc.table(pd.DataFrame([_summary(label, g) for label, g in analyses]))
    groups = [(label, g["layer"].tolist(), g["mean_distance_px"].tolist()) for label, g in analyses]
    doc.image(
        plots.scatter_by_layer(groups, ctx.figure("attention_distance"), "mean distance (px)"),
        "mean attention distance against depth",
    )
    if "entropy_norm" in df and df["entropy_norm"].notna().any():
        grids = [(label, _grid(g, "entropy_norm")) for label, g in analyses]
        doc.image(
            plots.heatmaps(
                grids, ctx.figure("attention_entropy"), "entropy / ln(keys)", vmin=0, vmax=1
            ),
            "normalised attention entropy per layer and head",
        )
    _importance(ctx, analyses)
    _clusters(ctx, analyses)
    _rollouts(ctx, analyses)


def _importance(ctx: Context, analyses: list[tuple[str, pd.DataFrame]]) -> None:
    grids = [
        (label, _grid(g, "importance"))
        for label, g in analyses
        if "importance" in g and g["importance"].notna().any()
    ]
    if not grids:
        return
    ctx.doc.paragraph(
        "Head importance (Michel et al. 2019): the absolute gradient of the loss with respect "
        "to a gate on each head's output, normalised per layer (darker: matters less)."
    )
    ctx.doc.image(
        plots.heatmaps(
            grids,
            ctx.figure("head_importance"),
            "importance",
            cmap="magma",
            vmin=0,
            vmax=max(float(np.nanmax(g)) for _, g in grids),
        ),
        "head importance per layer and head",
    )


def _clusters(ctx: Context, analyses: list[tuple[str, pd.DataFrame]]) -> None:
    groups = [
        (label, g["proj_x"].tolist(), g["proj_y"].tolist(), g["cluster"].astype(int).tolist())
        for label, g in analyses
        if {"proj_x", "proj_y", "cluster"} <= set(g.columns) and g["cluster"].notna().all()
    ]
    if not groups:
        return
    ctx.doc.paragraph(
        "Heads clustered by their metric profiles and attention patterns, shown in a 2-D "
        "projection (colour: cluster)."
    )
    ctx.doc.image(
        plots.clusters(groups, ctx.figure("head_clusters")), "head clusters in 2-D projection"
    )


def _rollout_name(group: pd.DataFrame) -> str | None:
    """The name of the analysis' rollout overlay in the ``figures`` table, if it stored one."""
    if "rollout_figure" not in group:
        return None
    names = group["rollout_figure"].dropna()
    return str(names.iloc[0]) if not names.empty else None


def _rollouts(ctx: Context, analyses: list[tuple[str, pd.DataFrame]]) -> None:
    """Copy the rollout overlay each analysis run stored into the report's figures."""
    for label, group in analyses:
        first, name = group.iloc[0], _rollout_name(group)
        stem = str(first["model"]).replace("/", "_")
        target = None
        if name is not None:
            target = ctx.copy_stored_figure(
                first["store"], first["run_id"], name, f"rollout_{stem}_{first['run_id']}"
            )
        if target is None:
            continue
        ctx.doc.paragraph(f"Attention rollout of the class token, {label}:")
        ctx.doc.image(target, f"attention rollout, {label}")
