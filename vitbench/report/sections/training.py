"""Training sections from ``train_epochs``, ``train_runs`` and ``sweep``.

Per run: the final numbers (with the methods it used: the weights it started from, a linear
probe, distillation and each head's accuracy, weights EMA, augmentation, image sizes), learning
curves, each progressive run's throughput by image size and the confusion matrix on the test
split; runs that differ only in their starting weights side by
side (pre-trained against from scratch); for a sweep: one row per cell and test accuracy
against GMACs.
"""

from __future__ import annotations

from pathlib import PurePath

import numpy as np
import pandas as pd

from vitbench.missing import MISSING, is_missing
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
from vitbench.sweep_effects import effects

#: learning-curve panels: (title, y label, [(column, legend suffix)], scale)
CURVES = (
    ("loss", "cross-entropy", (("train_loss", "train"), ("val_loss", "val")), 1.0),
    ("accuracy", "accuracy (%)", (("train_acc", "train"), ("val_acc", "val")), 100.0),
)

#: how many confusion matrices fit side by side at README width
MAX_CONFUSION = 3


def _run_labels(ctx: Context, df: pd.DataFrame) -> dict[str, str]:
    """run_id -> a legend label: the model, plus the run when a model was trained twice."""
    runs = df.drop_duplicates("run_id")
    repeated = runs["model"].duplicated(keep=False)
    labels = {}
    for (_, row), again in zip(runs.iterrows(), repeated, strict=True):
        parts = [str(row["model"])]
        if again:
            parts.append(str(row["run_id"]))
        if ctx.many_envs:
            parts.append(str(row[ENV_COLUMN]))
        labels[row["run_id"]] = " ".join(parts)
    return labels


def add_training(ctx: Context, epochs: pd.DataFrame, runs: pd.DataFrame) -> None:
    doc = ctx.doc
    doc.heading("Training")
    frames = [f for f in (epochs, runs) if not f.empty]
    doc.warning(mixed_warning(ctx.envs, pd.concat(frames), "This section"))
    labels = _run_labels(ctx, pd.concat([f[["run_id", "model", ENV_COLUMN]] for f in frames]))
    if not runs.empty:
        doc.paragraph(
            "Accuracy is the share of a split's images classified correctly; the test split is "
            "held out from training and from choosing the best epoch."
        )
        doc.table(_runs_table(ctx, runs))
        _starts(ctx, runs)
    if not epochs.empty and "epoch" in epochs:
        _curves(ctx, epochs, labels)
        _resizing(ctx, epochs, runs, labels)
    if not runs.empty:
        _confusion(ctx, runs, labels)


def _input(size: object, chans: object) -> str:
    """Input size and channels, ``8 x 8 x 1 ch``."""
    if is_missing(size):
        return MISSING
    suffix = "" if is_missing(chans) else f" x {int(chans)} ch"
    return f"{int(size)} x {int(size)}{suffix}"


def _confused(value: object) -> str:
    pairs = parse_json_cell(value) or []
    return ", ".join(f"{p['true']}→{p['pred']} ({p['count']})" for p in pairs[:3]) or MISSING


def _weights(rec: dict) -> object:
    """Where a run's weights started and what of them trained: ``checkpoint (new head), head
    only``; missing for a run stored before these fields."""
    if is_missing(rec.get("start")):
        return None
    text = str(rec["start"]) + (" (new head)" if _true(rec.get("new_head")) else "")
    return text + (", head only" if _true(rec.get("freeze")) else "")


def _true(value: object) -> bool:
    """A stored flag that is set (missing is not)."""
    return not is_missing(value) and bool(value)


def _methods(rec: dict, transfer: bool = True) -> object:
    """The training methods a run used beyond the recipe (but layer decay, without
    ``transfer``), or None."""
    parts = []
    if not is_missing(rec.get("distillation")):
        parts.append(f"{rec['distillation']} distillation from {rec.get('teacher')}")
    if transfer and not is_missing(rec.get("layer_decay")):
        parts.append(f"layer decay {rec['layer_decay']:g}")
    if not is_missing(rec.get("ema")):
        parts.append(f"EMA {rec['ema']:g}")
    if not is_missing(rec.get("randaugment")):
        parts.append(f"RandAugment {rec['randaugment']}")
    if not is_missing(rec.get("random_erasing")) and rec["random_erasing"] > 0:
        parts.append(f"random erasing {rec['random_erasing']:g}")
    if not is_missing(rec.get("img_size_schedule")):
        parts.append(f"image sizes {rec['img_size_schedule']}")
    return ", ".join(parts) or None


def _with_methods(runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` with ``weights`` and ``methods`` text (``weights`` left empty when every run
    started from scratch, so older reports read as before) and ``recipe``, the methods but
    layer decay."""
    recs = runs.to_dict("records")
    weights = [_weights(r) for r in recs]
    if all(w in (None, "scratch") for w in weights):
        weights = [None] * len(recs)
    methods = [_methods(r) for r in recs]
    recipe = [_methods(r, transfer=False) or "" for r in recs]
    return runs.assign(weights=weights, methods=methods, recipe=recipe)


def _runs_table(ctx: Context, runs: pd.DataFrame) -> pd.DataFrame:
    sizes = zip(column_or_none(runs, "img_size"), column_or_none(runs, "in_chans"), strict=True)
    runs = _with_methods(runs.assign(input=[_input(size, chans) for size, chans in sizes]))
    split = ["train_images", "val_images", "test_images"]
    if set(split) <= set(runs.columns):
        runs = runs.assign(split=[" / ".join(fmt(v, 0) for v in r) for r in runs[split].values])
    columns = {
        "run_id": ("run", str),
        "model": ("model", str),
        ENV_COLUMN: ("env", str) if ctx.many_envs else None,
        "dataset": ("data", str),
        "input": ("input (px)", str),
        "params": ("params (M)", lambda v: fmt(v / 1e6, 3)),
        "gmacs": ("GMACs", fmt_sig),
        "epochs": ("epochs", lambda v: fmt(v, 0)),
        "split": ("train / val / test images", str),
        "weights": ("weights", str),
        "methods": ("methods", str),
        "best_val_acc": ("best val accuracy", fmt_pct),
        "test_acc": ("test accuracy", fmt_pct),
        "test_acc_cls": ("class head", fmt_pct),
        "test_acc_dist": ("distillation head", fmt_pct),
        "teacher_test_acc": ("teacher", fmt_pct),
        "ema_test_acc": ("EMA weights", fmt_pct),
        "train_s": ("training time (s)", lambda v: fmt(v, 1)),
        "images_per_s": ("images / s", fmt_sig),
        "most_confused": ("most confused (true→predicted)", _confused),
    }
    return format_columns(runs, columns)


#: what runs compared for their starting weights share (their recipe: the methods but layer decay)
SAME_RUN = ["model", "dataset", "train_images", "epochs", "recipe"]


def _starts(ctx: Context, runs: pd.DataFrame) -> None:
    """Runs of one model on the same images for as many epochs that started from different
    weights (from scratch, pre-trained, a checkpoint; fine-tuned or probed), side by side."""
    if "start" not in runs:
        return
    runs = _with_methods(runs[runs["start"].notna()])
    groups = [g for _, g in runs.groupby(SAME_RUN, sort=False) if g["weights"].nunique() > 1]
    if not groups:
        return
    ctx.doc.paragraph(
        "Pre-trained against from scratch: runs of one model with one recipe on the same "
        "training images for as many epochs, differing in the weights they started from."
    )
    table = pd.concat(groups)
    columns = {
        "model": ("model", str),
        "dataset": ("data", str),
        "train_images": ("train images", lambda v: fmt(v, 0)),
        "epochs": ("epochs", lambda v: fmt(v, 0)),
        "weights": ("weights", str),
        "methods": ("methods", str),
        "trainable_params": ("trained params", lambda v: fmt(v, 0)),
        "test_acc": ("test accuracy", fmt_pct),
        "train_s": ("training time (s)", lambda v: fmt(v, 1)),
    }
    ctx.doc.table(format_columns(table, columns))


def _curves(ctx: Context, epochs: pd.DataFrame, labels: dict[str, str]) -> None:
    panels = []
    for title, ylabel, columns, scale in CURVES:
        series = []
        for run_id, g in epochs.groupby("run_id", sort=False):
            g = g.sort_values("epoch")
            for column, suffix in columns:
                if column in g and g[column].notna().any():
                    ok = g[g[column].notna()]
                    series.append(
                        plots.Series(
                            f"{labels[run_id]} {suffix}",
                            ok["epoch"].tolist(),
                            (ok[column] * scale).tolist(),
                        )
                    )
        if series:
            panels.append(plots.Panel(title, "epoch", ylabel, series))
    if panels:
        ctx.doc.image(plots.panels(panels, ctx.figure("training_curves")), "training curves")


def _resizing(
    ctx: Context, epochs: pd.DataFrame, runs: pd.DataFrame, labels: dict[str, str]
) -> None:
    """Each progressive run's epochs by image size: which, and how fast they trained."""
    if "img_size_schedule" not in runs or "img_size" not in epochs:
        return
    progressive = runs.loc[runs["img_size_schedule"].notna(), "run_id"]
    rows = epochs[epochs["run_id"].isin(progressive)]
    if rows.empty:
        return
    by_size = rows.groupby(["run_id", "img_size"], sort=False)
    table = by_size.agg(
        first=("epoch", "min"),
        last=("epoch", "max"),
        images_per_s=("images_per_s", "median"),
        epoch_s=("epoch_s", "sum"),
    ).reset_index()
    table["run"] = table["run_id"].map(labels)
    table["epochs"] = [f"{a}–{b}" for a, b in zip(table["first"], table["last"], strict=True)]
    ctx.doc.paragraph(
        "Progressive resizing: each progressive run's epochs by image size, with the median "
        "training throughput of those epochs and the seconds they took."
    )
    columns = {
        "run": ("run", str),
        "img_size": ("image side (px)", lambda v: fmt(v, 0)),
        "epochs": ("epochs", str),
        "images_per_s": ("images / s", fmt_sig),
        "epoch_s": ("training time (s)", lambda v: fmt(v, 1)),
    }
    ctx.doc.table(format_columns(table, columns))


def _confusion(ctx: Context, runs: pd.DataFrame, labels: dict[str, str]) -> None:
    if "confusion" not in runs:
        return
    grids = []
    for rec in runs.to_dict("records"):
        matrix = parse_json_cell(rec.get("confusion"))
        if matrix:
            grids.append((labels[rec["run_id"]], np.asarray(matrix, dtype=float)))
    if not grids:
        return
    shown = grids[-MAX_CONFUSION:]
    note = f" (the last {len(shown)} runs)" if len(grids) > len(shown) else ""
    ctx.doc.paragraph(f"Confusion matrices on the test split{note}: rows true, columns predicted.")
    ctx.doc.image(
        plots.heatmaps(
            shown,
            ctx.figure("confusion_matrix"),
            "test images",
            xlabel="predicted class",
            ylabel="true class",
            annotate=True,
            cmap="Blues",
            aspect="equal",
        ),
        "confusion matrix on the test split",
    )


def grid_keys(cells: pd.DataFrame) -> list[str]:
    """The hyperparameters a sweep varied, in grid order, as its ``cell`` labels name them."""
    labels = cells["cell"].dropna().astype(str) if "cell" in cells else []
    keys = dict.fromkeys(part.split("=", 1)[0] for label in labels for part in label.split(","))
    return [k for k in keys if k in cells and cells[k].notna().any()]


def add_sweep(ctx: Context, sweep: pd.DataFrame) -> None:
    """Per sweep: one row per cell, the effect of each hyperparameter, accuracy against GMACs."""
    doc = ctx.doc
    doc.heading("Sweep: accuracy against cost")
    doc.paragraph(
        "Every cell is a full training run; the effect table averages test accuracy over the "
        "cells that share a hyperparameter's value."
    )
    doc.warning(mixed_warning(ctx.envs, sweep, "The sweep"))
    sweeps = list(sweep.groupby("run_id", sort=False))
    for i, (sweep_id, cells) in enumerate(sweeps, 1):
        keys = grid_keys(cells)
        if len(sweeps) > 1:
            doc.heading(f"Sweep {sweep_id}", 3)
        columns: dict = {"model": ("model", str), "dataset": ("data", str)}
        columns.update({k: (k, _cell) for k in keys})
        columns.update(
            {
                ENV_COLUMN: ("env", str) if ctx.many_envs else None,
                "params": ("params (M)", lambda v: fmt(v / 1e6, 3)),
                "gmacs": ("GMACs", fmt_sig),
                "best_val_acc": ("best val accuracy", fmt_pct),
                "test_acc": ("test accuracy", fmt_pct),
                "train_s": ("training time (s)", lambda v: fmt(v, 1)),
            }
        )
        doc.table(format_columns(cells, columns))
        if keys and cells["test_acc"].notna().all():
            doc.table(_effects_table(cells, keys))
        ok = cells[cells["gmacs"].notna() & cells["test_acc"].notna()]
        points = [
            (",".join(f"{k}={_cell(r[k])}" for k in keys), r["gmacs"], 100 * r["test_acc"])
            for _, r in ok.iterrows()
        ]
        if points:
            doc.image(
                plots.labelled_scatter(
                    points,
                    ctx.figure(f"sweep_accuracy_vs_gmacs_{i}"),
                    "GMACs per image",
                    "test accuracy (%)",
                    "sweep: test accuracy against cost",
                    logx=min(p[1] for p in points) > 0,
                ),
                "sweep: test accuracy against GMACs",
            )


def _effects_table(cells: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Per hyperparameter value: the cells sharing it and their test accuracy and GMACs."""
    given = cells.astype(object).where(cells.notna(), None)  # NaN != NaN: a none value
    table = pd.DataFrame(effects(given.to_dict("records"), keys))
    return format_columns(
        table,
        {
            "hyperparameter": ("hyperparameter", str),
            "value": ("value", _cell),
            "cells": ("cells", lambda v: fmt(v, 0)),
            "mean_test_acc": ("mean test accuracy", fmt_pct),
            "min_test_acc": ("min", fmt_pct),
            "max_test_acc": ("max", fmt_pct),
            "mean_gmacs": ("mean GMACs", fmt_sig),
        },
    )


def _cell(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and "/" in value:  # a checkpoint: its run and file
        return "…/" + "/".join(PurePath(value).parts[-2:])
    return fmt_sig(value, 4) if isinstance(value, float) else str(value)
