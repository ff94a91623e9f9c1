"""The pre-training section from ``pretrain_epochs`` (and the ``train_runs`` that fine-tuned).

Per MAE run: its shape and masking, the reconstruction loss at the first and last epoch, the
loss curves and the stored figure of masked input, reconstruction and original. Then MAE
against from scratch for the same number of epochs: each fine-tuning run that started from an
MAE encoder beside the from-scratch run of the same model, data and seed trained for the MAE
epochs plus the fine-tuning epochs.
"""

from __future__ import annotations

import pandas as pd

from vitbench.report import plots
from vitbench.report.context import Context
from vitbench.report.environment import mixed_warning
from vitbench.report.tables import fmt, fmt_pct, format_columns, parse_json_cell

#: the figure an MAE run stores (vitbench.pretrain.run.FIGURE)
FIGURE = "reconstruction.png"
#: reconstruction figures shown at most
MAX_FIGURES = 3
#: what a fine-tuning run and its from-scratch match share
SAME = ("model", "dataset", "seed", "img_size", "in_chans")


def _runs(epochs: pd.DataFrame) -> pd.DataFrame:
    """One row per MAE run: its last epoch, with the first epoch's loss and the seconds."""
    ordered = epochs.sort_values(["run_id", "epoch"])
    by_run = ordered.groupby("run_id", sort=False)
    runs = by_run.tail(1).set_index("run_id")
    runs["first_val_loss"] = by_run["val_loss"].first()
    runs["pretrain_s"] = by_run["epoch_s"].sum()
    runs["masked"] = (
        runs["masked_patches"].astype(int).astype(str)
        + " of "
        + runs["num_patches"].astype(int).astype(str)
    )
    return runs.reset_index()


def add_pretraining(ctx: Context, epochs: pd.DataFrame, train_runs: pd.DataFrame) -> None:
    doc = ctx.doc
    doc.heading("Pre-training (MAE)")
    doc.warning(mixed_warning(ctx.envs, epochs, "This section"))
    doc.paragraph(
        "Masked autoencoders (He et al. 2022): each image's patches are hidden at random but "
        "for a share, the ViT encoder sees the visible ones only, a light decoder predicts "
        "every patch, and the loss is the mean squared error on the hidden patches of each "
        "patch's pixels normalised by its own mean and spread (0 is perfect; predicting each "
        "patch's mean scores (n - 1) / n for patches of n values, less where patches are "
        "flat). Validation loss is measured under one fixed masking, so epochs compare on the "
        "same hidden patches."
    )
    runs = _runs(epochs)
    columns = {
        "model": ("model", str),
        "dataset": ("data", str),
        "img_size": ("image (px)", lambda v: fmt(v, 0)),
        "masked": ("patches hidden", str),
        "epochs": ("epochs", lambda v: fmt(v, 0)),
        "first_val_loss": ("val loss, epoch 1", lambda v: fmt(v, 3)),
        "val_loss": ("val loss, last", lambda v: fmt(v, 3)),
        "pretrain_s": ("pre-training (s)", lambda v: fmt(v, 1)),
        "run_id": ("run", str),
    }
    doc.table(format_columns(runs, columns))
    _curves(ctx, epochs)
    _figures(ctx, runs)
    _against_scratch(ctx, runs, train_runs)


def _curves(ctx: Context, epochs: pd.DataFrame) -> None:
    series = []
    for run_id, g in epochs.sort_values("epoch").groupby("run_id", sort=False):
        name = f"{g['model'].iloc[0]} on {g['dataset'].iloc[0]} {run_id}"
        for column, split in (("train_loss", "train"), ("val_loss", "val")):
            series.append(plots.Series(f"{name} {split}", g["epoch"].tolist(), g[column].tolist()))
    panel = plots.Panel("MAE reconstruction loss", "epoch", "loss on hidden patches", series)
    ctx.doc.image(plots.panels([panel], ctx.figure("mae_loss")), "MAE reconstruction loss")


def _figures(ctx: Context, runs: pd.DataFrame) -> None:
    """Copy the masked input / reconstruction / original figure each run stored."""
    for _, run in runs.tail(MAX_FIGURES).iterrows():
        name = f"mae_reconstruction_{run['run_id']}"
        target = ctx.copy_stored_figure(run["store"], run["run_id"], FIGURE, name)
        if target is None:
            continue
        ctx.doc.paragraph(
            f"Run {run['run_id']}, validation images: the encoder's input (hidden patches "
            "grey), the reconstruction (visible patches as they were, hidden ones as predicted, "
            "put back on each patch's own mean and spread) and the original."
        )
        ctx.doc.image(target, f"MAE reconstructions, run {run['run_id']}")


def _fine_tunes(runs: pd.DataFrame, train_runs: pd.DataFrame) -> pd.DataFrame:
    """The training runs that started from an MAE run's encoder, with that run's fields."""
    if train_runs.empty or "config" not in train_runs:
        return pd.DataFrame()
    start = train_runs["config"].map(lambda c: (parse_json_cell(c) or {}).get("checkpoint"))
    tuned = train_runs.assign(checkpoint=start).dropna(subset=["checkpoint"])
    mae = runs[["checkpoint", "run_id", "epochs", "pretrain_s"]].rename(
        columns={"run_id": "mae_run", "epochs": "mae_epochs"}
    )
    return tuned.merge(mae, on="checkpoint")


def _against_scratch(ctx: Context, runs: pd.DataFrame, train_runs: pd.DataFrame) -> None:
    tuned = _fine_tunes(runs, train_runs)
    if tuned.empty:
        return
    scratch = train_runs[train_runs["start"] == "scratch"]
    rows = []
    for _, ft in tuned.iterrows():
        total = int(ft["mae_epochs"] + ft["epochs"])
        same = scratch[(scratch[list(SAME)] == ft[list(SAME)]).all(axis=1)]
        match = same[same["epochs"] == total].tail(1)
        rows.append(
            {
                **{k: ft[k] for k in ("model", "dataset", "seed")},
                "budget": f"{int(ft['mae_epochs'])} MAE + {int(ft['epochs'])} fine-tuning",
                "layer_decay": ft.get("layer_decay"),
                "mae_acc": ft["test_acc"],
                "mae_s": ft["pretrain_s"] + ft["train_s"],
                "scratch_acc": match["test_acc"].iloc[0] if len(match) else None,
                "scratch_s": match["train_s"].iloc[0] if len(match) else None,
                "total": total,
            }
        )
    ctx.doc.paragraph(
        "MAE against from scratch for the same number of epochs: fine-tuning from the MAE "
        "encoder (a new head) beside the run of the same model on the same data and seed "
        "trained from scratch for the MAE and fine-tuning epochs together (an MAE epoch costs "
        "less: its encoder sees the visible patches only)."
    )
    columns = {
        "model": ("model", str),
        "dataset": ("data", str),
        "seed": ("seed", lambda v: fmt(v, 0)),
        "budget": ("MAE run", str),
        "layer_decay": ("layer decay", lambda v: fmt(v, 2)),
        "mae_acc": ("test accuracy after MAE", fmt_pct),
        "mae_s": ("seconds (both)", lambda v: fmt(v, 1)),
        "total": ("epochs from scratch", lambda v: fmt(v, 0)),
        "scratch_acc": ("test accuracy from scratch", fmt_pct),
        "scratch_s": ("seconds", lambda v: fmt(v, 1)),
    }
    ctx.doc.table(format_columns(pd.DataFrame(rows), columns))
