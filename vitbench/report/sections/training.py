"""Training sections from ``train_epochs``, ``train_runs`` and ``sweep``.

Learning curves, final test accuracy with a confusion matrix, and the sweep's accuracy against
cost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from vitbench.report import plots
from vitbench.report.context import Context
from vitbench.report.environment import ENV_COLUMN, mixed_warning
from vitbench.report.tables import fmt, fmt_pct, fmt_sig, format_columns, parse_json_cell

#: learning-curve panels: (title, y label, [(column, legend suffix)], scale)
CURVES = (
    ("loss", "cross-entropy", (("train_loss", "train"), ("val_loss", "val")), 1.0),
    ("accuracy", "accuracy (%)", (("train_acc", "train"), ("val_acc", "val")), 100.0),
)


def _run_label(ctx: Context, model: object, run_id: object, env: object, many: bool) -> str:
    parts = [str(model)]
    if many:
        parts.append(str(run_id))
    if ctx.many_envs:
        parts.append(str(env))
    return " ".join(parts)


def add_training(ctx: Context, epochs: pd.DataFrame, runs: pd.DataFrame) -> None:
    doc = ctx.doc
    doc.heading("Training")
    frames = [f for f in (epochs, runs) if not f.empty]
    doc.warning(mixed_warning(ctx.envs, pd.concat(frames), "This section"))
    if not runs.empty:
        _runs_table(ctx, runs)
    if not epochs.empty and "epoch" in epochs:
        _curves(ctx, epochs)
    if not runs.empty:
        _confusion(ctx, runs)


def _runs_table(ctx: Context, runs: pd.DataFrame) -> None:
    columns = {
        "run_id": ("run", str),
        "model": ("model", str),
        ENV_COLUMN: ("env", str) if ctx.many_envs else None,
        "dataset": ("dataset", str),
        "epochs": ("epochs", lambda v: fmt(v, 0)),
        "params": ("params (M)", lambda v: fmt(v / 1e6)),
        "train_images": ("train images", lambda v: fmt(v, 0)),
        "test_images": ("test images", lambda v: fmt(v, 0)),
        "best_val_acc": ("best val accuracy", fmt_pct),
        "test_acc": ("test accuracy", fmt_pct),
        "train_s": ("training time (s)", fmt_sig),
    }
    ctx.doc.table(format_columns(runs, columns))


def _curves(ctx: Context, epochs: pd.DataFrame) -> None:
    keys = [k for k in ("run_id", "model", ENV_COLUMN) if k in epochs]
    groups = list(epochs.groupby(keys, sort=False, dropna=False))
    many = epochs["model"].nunique() < len(groups) if "model" in epochs else True
    panels = []
    for title, ylabel, columns, scale in CURVES:
        series = []
        for _, g in groups:
            g = g.sort_values("epoch")
            first = g.iloc[0]
            label = _run_label(
                ctx, first.get("model"), first.get("run_id"), first.get(ENV_COLUMN), many
            )
            for column, suffix in columns:
                if column in g and g[column].notna().any():
                    ok = g[g[column].notna()]
                    series.append(
                        plots.Series(
                            f"{label} {suffix}", ok.epoch.tolist(), (ok[column] * scale).tolist()
                        )
                    )
        if series:
            panels.append(plots.Panel(title, "epoch", ylabel, series))
    if panels:
        ctx.doc.image(plots.panels(panels, ctx.figure("training_curves")), "training curves")


def _confusion(ctx: Context, runs: pd.DataFrame) -> None:
    if "confusion" not in runs:
        return
    grids = []
    many = len(runs) > 1
    for rec in runs.to_dict("records"):
        matrix = parse_json_cell(rec.get("confusion"))
        if matrix:
            label = _run_label(ctx, rec.get("model"), rec.get("run_id"), rec.get(ENV_COLUMN), many)
            grids.append((label, np.asarray(matrix, dtype=float)))
    if grids:
        ctx.doc.image(
            plots.heatmaps(
                grids[-3:],
                ctx.figure("confusion_matrix"),
                "test images",
                xlabel="predicted class",
                ylabel="true class",
                annotate=True,
                cmap="Blues",
            ),
            "confusion matrix on the test split",
        )


def add_sweep(ctx: Context, sweep: pd.DataFrame) -> None:
    doc = ctx.doc
    doc.heading("Sweep: accuracy against cost")
    doc.warning(mixed_warning(ctx.envs, sweep, "The sweep"))
    doc.table(format_columns(sweep, {c: (c, _cell) for c in sweep.columns if _shown(c)}))
    if {"gmacs", "test_acc"} <= set(sweep.columns):
        ok = sweep[sweep.gmacs.notna() & sweep.test_acc.notna()]
        points = [(str(r.get("model", i)), r.gmacs, 100 * r.test_acc) for i, r in ok.iterrows()]
        if points:
            doc.image(
                plots.labelled_scatter(
                    points,
                    ctx.figure("sweep_accuracy_vs_gmacs"),
                    "GMACs per image",
                    "test accuracy (%)",
                    "sweep: accuracy against cost",
                ),
                "sweep accuracy against GMACs",
            )


def _shown(column: str) -> bool:
    return not column.startswith("env_") and column not in ("schema_version", "timestamp", "store")


def _cell(value: object) -> str:
    return fmt_sig(value, 4) if isinstance(value, float) else str(value)
