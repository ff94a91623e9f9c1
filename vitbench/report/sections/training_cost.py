"""The training-cost section, from the ``profile`` rows of training steps (``mode`` train).

Training memory against tokens with the stored fits, eager against fused attention (drawn as
the inference cost is: a law only where the fit is rated good); the step time against batch
size; and every training point with its memory split into what it is made of.
"""

from __future__ import annotations

import pandas as pd

from vitbench.report import plots
from vitbench.report.context import Context
from vitbench.report.environment import ENV_COLUMN, mixed_warning
from vitbench.report.sections import cost
from vitbench.report.tables import (
    attention_name,
    flag,
    fmt,
    fmt_mib,
    fmt_pct,
    fmt_sig,
    format_columns,
)

#: the memory panels against tokens: stored metric -> (panel title, y label, scale)
MEMORY_METRICS: cost.Metrics = {
    "train_memory_saved_bytes": ("saved for backward", "MiB", 1 / 2**20),
    "train_memory_peak_bytes": ("training peak memory", "MiB", 1 / 2**20),
}
#: every training fit, named as the fit table and its notes name it
FITTED_METRICS: cost.Metrics = {
    "train_macs": ("training MACs per image", "GMACs", 1e-9),
    "latency_median_ms": ("step time (median)", "ms per step", 1.0),
    **MEMORY_METRICS,
}
#: the panel against batch size (one: every figure costs the report time; throughput is in the
#: points table)
STEP_METRICS: cost.Metrics = {"latency_median_ms": ("step time (median)", "ms per step", 1.0)}
#: what tells training sweeps of one run, model and batch size apart
SETTING = ("fused_attn", "grad_checkpointing", "optimizer")
#: how the memory fits are keyed to the points they were fitted to
FIT_KEYS = ["run_id", "model", "batch_size"]
#: the stored method of each memory figure -> what it measured
METHODS = {
    "train_memory_method": "the peak",
    "train_memory_parts_method": "weights, gradients and optimizer state",
    "train_memory_saved_method": "activations saved for backward",
}


def add_training_cost(ctx: Context, train: pd.DataFrame, stored: pd.DataFrame) -> None:
    """The section, when any training step was measured."""
    train = cost.ok_rows(train)
    if train.empty:
        return
    doc = ctx.doc
    doc.heading("Training cost")
    doc.paragraph(
        "`vitbench profile --mode train` times one training step per point as it times an "
        "inference forward: forward, cross-entropy against random labels, backward, optimizer "
        "step and zero_grad. Step time is per batch; train GMACs count the forward and backward "
        "of one image (a little under 3 x the forward, as the image needs no gradient), not "
        "the optimizer's element-wise work. The step's peak memory is split into weights, "
        "gradients, optimizer state and the activations saved for backward."
    )
    doc.warning(mixed_warning(ctx.envs, train, "This section"))
    _memory_vs_tokens(ctx, train, stored)
    _step_vs_batch(ctx, train)
    doc.heading("Training points", 3)
    doc.table(format_columns(_in_order(train), _point_columns(ctx, train)))
    methods = _methods(train)
    if methods:
        doc.paragraph(methods)


def _in_order(train: pd.DataFrame) -> pd.DataFrame:
    """The points run by run (in the order stored), then by model, batch size and tokens."""
    runs = {r: i for i, r in enumerate(dict.fromkeys(train["run_id"]))}
    keys = [k for k in ("model", "batch_size", "tokens") if k in train]
    ordered = train.assign(run_order=train["run_id"].map(runs))
    return ordered.sort_values(["run_order", *keys], kind="stable")


def _methods(train: pd.DataFrame) -> str:
    """Which method measured each memory figure (docs/methodology/memory.md)."""
    said = [
        f"{what} by {', '.join(dict.fromkeys(train[column].dropna().astype(str)))}"
        for column, what in METHODS.items()
        if column in train and train[column].notna().any()
    ]
    return f"Memory measured: {'; '.join(said)}." if said else ""


def _memory_vs_tokens(ctx: Context, train: pd.DataFrame, stored: pd.DataFrame) -> None:
    """Training memory against tokens, log-log, eager and fused attention with their fits."""
    groups = cost.sweeps(train, "tokens", ("batch_size", *SETTING)) if "tokens" in train else []
    if not groups:
        return
    stored = _with_setting(stored, train)
    doc = ctx.doc
    doc.heading("Training memory against the number of tokens", 3)
    doc.paragraph(
        "Each point is one input size; fits are drawn as in *Cost against the number of "
        "tokens* (dashed only where rated good). Eager attention saves every head's N x N "
        "attention probabilities for backward, so its saved activations grow faster than N; "
        "fused attention (a flash-attention kernel) keeps only its output and a per-row "
        "statistic and recomputes the rest in backward, so its saved activations grow about "
        "linearly in N. At a few hundred tokens the N x N part is still small beside the "
        "per-token activations, and the two lie close together. The peak grows with tokens only "
        "once the activations outweigh what the optimizer step holds (weights, gradients and "
        "optimizer state); below that it is flat."
    )
    panels = cost.scaling_panels(ctx, groups, stored, MEMORY_METRICS)
    if panels:
        path = plots.panels(panels, ctx.figure("train_memory_vs_tokens"))
        doc.image(path, "training memory against tokens")
    if not stored.empty:
        cost.add_fit_table(ctx, stored, FITTED_METRICS)


def _with_setting(stored: pd.DataFrame, train: pd.DataFrame) -> pd.DataFrame:
    """The fits with the attention and checkpointing of the points they were fitted to."""
    columns = [c for c in SETTING if c in train]
    if stored.empty or not columns or not set(FIT_KEYS) <= set(stored.columns):
        return stored
    setting = train.drop_duplicates(FIT_KEYS)[FIT_KEYS + columns]
    return stored.drop(columns=columns, errors="ignore").merge(setting, on=FIT_KEYS, how="left")


def _step_vs_batch(ctx: Context, train: pd.DataFrame) -> None:
    """Step time against batch size, where 2+ batch sizes were run."""
    if "latency_median_ms" not in train:
        return
    groups = [
        g
        for g in cost.sweeps(train, "batch_size", (*cost.SHAPE, *SETTING))
        if g["latency_median_ms"].notna().any()
    ]
    if not groups:
        return
    doc = ctx.doc
    doc.heading("Step time against batch size", 3)
    doc.warning(mixed_warning(ctx.envs, pd.concat(groups), "This plot"))
    panels = cost.batch_panels(ctx, groups, STEP_METRICS)
    doc.image(plots.panels(panels, ctx.figure("train_step_vs_batch")), "step time vs batch")


def _point_columns(ctx: Context, points: pd.DataFrame) -> dict:
    """The training points table's columns; flags only where some row has them set."""
    checkpointed = "grad_checkpointing" in points and points["grad_checkpointing"].map(flag).any()
    return {
        "model": ("model", str),
        ENV_COLUMN: ("env", str) if ctx.many_envs else None,
        "img_size": ("image (px)", lambda v: fmt(v, 0)),
        "batch_size": ("batch", lambda v: fmt(v, 0)),
        "tokens": ("tokens", lambda v: fmt(v, 0)),
        "fused_attn": ("attention", attention_name),
        "grad_checkpointing": ("checkpointed", lambda v: "yes" if v else "no")
        if checkpointed
        else None,
        "optimizer": ("optimizer", str),
        "precision": ("precision", str),
        "train_macs": ("train GMACs", lambda v: fmt_sig(v / 1e9)),
        "latency_median_ms": ("step time (ms)", fmt_sig),
        "latency_cv": ("step time CV", fmt_pct),
        "latency_noisy": ("noisy timing", lambda v: "yes" if v else "no")
        if cost.any_flagged(points)
        else None,
        "throughput_sps": ("img/s", fmt_sig),
        "train_memory_peak_bytes": ("peak (MiB)", fmt_mib),
        "train_memory_weights_bytes": ("weights (MiB)", fmt_mib),
        "train_memory_grads_bytes": ("gradients (MiB)", fmt_mib),
        "train_memory_optimizer_bytes": ("optimizer state (MiB)", fmt_mib),
        "train_memory_saved_bytes": ("saved for backward (MiB)", fmt_mib),
    }
