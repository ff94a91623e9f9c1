"""The attention section from the ``attention`` table (one row per analysed model, layer, head).

Mean attention distance against depth (the ViT paper's figure), an entropy heatmap, head
importance where it was measured, and a per-model summary.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitbench.report import plots
from vitbench.report.context import Context
from vitbench.report.environment import ENV_COLUMN, mixed_warning
from vitbench.report.tables import fmt, is_missing

#: columns that name one analysis (a model with its weights, on its images)
ANALYSIS = ("run_id", "model", "weights", "checkpoint", ENV_COLUMN)


def _analyses(df: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    keys = [k for k in ANALYSIS if k in df]
    many_runs = df.groupby([k for k in keys if k != "run_id"], dropna=False).ngroups < (
        df.groupby(keys, dropna=False).ngroups
    )
    out = []
    for _, group in df.groupby(keys, sort=False, dropna=False):
        first = group.iloc[0]
        parts = [str(first["model"])]
        for k in ("weights", "checkpoint"):
            if k in group and not is_missing(first[k]):
                parts.append(str(first[k]))
        if many_runs:
            parts.append(str(first["run_id"]))
        out.append((" ".join(parts), group))
    return out


def _grid(group: pd.DataFrame, column: str) -> np.ndarray:
    """Layer x head values of one analysis."""
    pivot = group.pivot_table(index="layer", columns="head", values=column, aggfunc="mean")
    return pivot.sort_index().to_numpy(dtype=float)


def _summary(label: str, group: pd.DataFrame) -> dict[str, str]:
    by_layer = group.groupby("layer")["mean_distance_px"].mean().sort_index()
    row = {
        "analysis": label,
        "layers": str(group["layer"].nunique()),
        "heads": str(group["head"].nunique()),
        "distance, first layer (px)": fmt(by_layer.iloc[0], 1),
        "distance, last layer (px)": fmt(by_layer.iloc[-1], 1),
        "head distance range (px)": f"{fmt(group['mean_distance_px'].min(), 1)} to "
        f"{fmt(group['mean_distance_px'].max(), 1)}",
    }
    if "entropy_norm" in group:
        row["mean normalised entropy"] = fmt(group["entropy_norm"].mean(), 3)
    if "cls_attention" in group:
        row["mean attention to class token"] = fmt(group["cls_attention"].mean(), 3)
    return row


def add_attention(ctx: Context, df: pd.DataFrame) -> None:
    if "mean_distance_px" not in df or df["mean_distance_px"].notna().sum() == 0:
        return
    analyses = _analyses(df)
    doc = ctx.doc
    doc.heading("Attention")
    doc.paragraph(
        "Mean attention distance per head (pixels between a query patch and the patches it "
        "attends to, weighted by attention, averaged over query patches and images; the ViT "
        "paper's measure) against depth, and the entropy of each head's attention rows "
        "normalised by its maximum (1: uniform attention, 0: one key)."
    )
    doc.warning(mixed_warning(ctx.envs, df, "The attention figures"))
    doc.table(pd.DataFrame([_summary(label, g) for label, g in analyses]))
    groups = [(label, g["layer"].tolist(), g["mean_distance_px"].tolist()) for label, g in analyses]
    doc.image(
        plots.scatter_by_layer(groups, ctx.figure("attention_distance"), "mean distance (px)"),
        "mean attention distance against depth",
    )
    column = "entropy_norm" if "entropy_norm" in df else "entropy"
    if column in df and df[column].notna().any():
        grids = [(label, _grid(g, column)) for label, g in analyses]
        unit = "normalised entropy" if column == "entropy_norm" else "entropy (nats)"
        doc.image(plots.heatmaps(grids, ctx.figure("attention_entropy"), unit), "entropy heatmap")
    if "importance" in df and df["importance"].notna().any():
        doc.paragraph(
            "Head importance (Michel et al. 2019): the expected absolute gradient of the loss "
            "with respect to a gate on the head's output, normalised per layer."
        )
        grids = [(label, _grid(g, "importance")) for label, g in analyses if g.importance.any()]
        doc.image(
            plots.heatmaps(grids, ctx.figure("head_importance"), "importance", cmap="magma"),
            "head importance",
        )
