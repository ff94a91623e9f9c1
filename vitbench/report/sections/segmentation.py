"""Semantic segmentation from ``train_runs`` and ``train_epochs``: the mIoU table, each class's
IoU, validation mIoU per epoch and the prediction overlays each run stored."""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitbench.report import plots
from vitbench.report.context import Context
from vitbench.report.environment import ENV_COLUMN, mixed_warning
from vitbench.report.tables import (
    column_or_none,
    fmt,
    fmt_pct,
    fmt_sig,
    format_columns,
    parse_json_cell,
)
from vitbench.segmentation import OVERLAY_FIGURE

#: classes in the per-class table, at most (the most frequent in the test labels)
MAX_CLASSES = 20
#: runs whose overlays are shown, at most (the last ones)
MAX_OVERLAYS = 3


def split(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of classification runs, and those of segmentation runs."""
    if "task" not in df:
        return df, df.iloc[:0]
    segmented = df["task"] == "segmentation"
    return df[~segmented], df[segmented]


def add_segmentation(ctx: Context, epochs: pd.DataFrame, runs: pd.DataFrame) -> None:
    """The section, when a segmentation run was stored."""
    if runs.empty and epochs.empty:
        return
    doc = ctx.doc
    doc.heading("Semantic segmentation")
    doc.warning(mixed_warning(ctx.envs, pd.concat([epochs, runs]), "This section"))
    doc.paragraph(
        "IoU of a class is TP / (TP + FP + FN) over the test split's labelled pixels; mIoU "
        "averages it over the classes that are labelled or predicted; pixel accuracy is the "
        "share of labelled pixels predicted right. Ignored pixels count nowhere."
    )
    if not runs.empty:
        doc.table(_runs_table(ctx, runs))
        doc.table(_class_table(runs))
    if "val_miou" in epochs and epochs["val_miou"].notna().any():
        _curves(ctx, epochs, runs)
    _overlays(ctx, runs)


def _runs_table(ctx: Context, runs: pd.DataFrame) -> pd.DataFrame:
    columns = {
        "run_id": ("run", str),
        "model": ("model", str),
        ENV_COLUMN: ("env", str) if ctx.many_envs else None,
        "dataset": ("data", str),
        "img_size": ("input (px)", lambda v: fmt(v, 0)),
        "decoder": ("decoder", str),
        "params": ("params (M)", lambda v: fmt(v / 1e6, 3)),
        "gmacs": ("GMACs", fmt_sig),
        "epochs": ("epochs", lambda v: fmt(v, 0)),
        "miou": ("test mIoU", fmt_pct),
        "pixel_acc": ("pixel accuracy", fmt_pct),
        "train_s": ("training time (s)", lambda v: fmt(v, 1)),
    }
    return format_columns(runs, columns)


def _class_table(runs: pd.DataFrame) -> pd.DataFrame:
    """IoU per class (rows) and run (columns), the classes most labelled in the last run's
    test split first."""
    last = runs.iloc[-1]
    classes = parse_json_cell(last["classes"]) or []
    pixels = np.asarray(parse_json_cell(last["confusion"]) or [[0]], dtype=float).sum(1)
    order = np.argsort(-pixels, kind="stable")[:MAX_CLASSES]
    table = pd.DataFrame({"class": [classes[i] for i in order]})
    for rec in runs.to_dict("records"):
        iou = parse_json_cell(rec.get("iou")) or []
        if len(iou) == len(classes):
            table[str(rec["run_id"])] = [fmt_pct(iou[i]) for i in order]
    return table


def _curves(ctx: Context, epochs: pd.DataFrame, runs: pd.DataFrame) -> None:
    """Validation mIoU per epoch, one line per run (labelled with its decoder when stored)."""
    decoders = dict(zip(runs["run_id"], column_or_none(runs, "decoder"), strict=True))
    series = [
        plots.Series(
            f"{decoders.get(run_id) or 'run'} {run_id}",
            g["epoch"].tolist(),
            (100 * g["val_miou"]).tolist(),
        )
        for run_id, g in epochs.sort_values("epoch").groupby("run_id", sort=False)
    ]
    panel = plots.Panel("validation mIoU", "epoch", "mIoU (%)", series, integer_x=True)
    ctx.doc.image(plots.panels([panel], ctx.figure("segmentation_miou")), "validation mIoU")


def _overlays(ctx: Context, runs: pd.DataFrame) -> None:
    """Copy the overlays of the last runs out of their stores into the report's figures."""
    for rec in runs.to_dict("records")[-MAX_OVERLAYS:]:
        name = f"segmentation_{rec['run_id']}"
        target = ctx.copy_stored_figure(rec["store"], rec["run_id"], OVERLAY_FIGURE, name)
        if target is None:
            continue
        ctx.doc.paragraph(
            f"Test images of run {rec['run_id']} ({rec['model']}): true and "
            "predicted masks painted over them."
        )
        ctx.doc.image(target, f"segmentation overlays, run {rec['run_id']}")
