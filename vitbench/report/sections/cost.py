"""Cost sections from the ``profile`` and ``profile_fit`` tables.

The benchmark table against published figures; cost against tokens on log-log axes with the
stored power-law fits (drawn as laws only when rated good, see :mod:`vitbench.report.fits`);
throughput and utilization against batch size.
"""

from __future__ import annotations

import pandas as pd

from vitbench.report import fits, plots
from vitbench.report.context import Context
from vitbench.report.environment import ENV_COLUMN, mixed_warning
from vitbench.report.tables import (
    attention_name,
    benchmark_table,
    flag,
    fmt,
    fmt_mib,
    fmt_pct,
    fmt_sig,
    format_columns,
    has_published,
    latest,
    measured_benchmark,
    papers_table,
    row_mode,
    throughput_settings,
    with_mode,
)

SHAPE = ("img_size", "patch_size", "seq_len", "model_kwargs")

#: stored metric -> (panel title, y label, scale to the plotted unit)
Metrics = dict[str, tuple[str, str, float]]
COST_METRICS: Metrics = {
    "macs": ("MACs per image", "GMACs", 1e-9),
    "latency_median_ms": ("latency (median)", "ms per batch", 1.0),
    "memory_peak_over_baseline_bytes": ("activation memory", "MiB", 1 / 2**20),
}
#: what the benchmark table's training columns are, said below it when it has them
TRAIN_COLUMNS = (
    "The training columns time one training step (forward, cross-entropy against random labels, "
    "backward, optimizer step, zero_grad) at the batch size of the highest training throughput "
    "measured: train GMACs count the forward and backward of one image (the optimizer's "
    "element-wise work is not in them), the peak memory is the step's. The published training "
    "throughput is timm's `benchmark.py --bench train` on a GPU, in the setting beside it (timm "
    "times SGD by default), so the ratio again compares machines and settings."
)
#: what the utilization table adds where training steps were measured
TRAIN_MFU = (
    " A training step's MFU counts its forward and backward MACs (`train_macs`), not the "
    "optimizer's element-wise work."
)
#: batch-size panels of inference: stored metric -> (panel title, y label, scale)
BATCH_METRICS: Metrics = {
    "throughput_sps": ("throughput", "images / s", 1.0),
    "mfu": ("model-FLOPs utilization", "MFU (%)", 100.0),
}


def ok_rows(profile: pd.DataFrame) -> pd.DataFrame:
    """The rows that were measured (not out of memory or failed)."""
    if "status" not in profile:
        return profile
    return profile[profile["status"].fillna("ok") == "ok"]


def _label(ctx: Context, model: str, env: str, extra: str = "") -> str:
    parts = [model, extra] if extra else [model]
    if ctx.many_envs:
        parts.append(env)
    return " ".join(parts)


def _step_words(rec: pd.Series | dict) -> list[str]:
    """What tells a training step's rows apart in a legend: attention, checkpointing."""
    if rec.get("mode") != "train":
        return []
    checkpointed = "checkpointed" if flag(rec.get("grad_checkpointing")) else ""
    return [w for w in (attention_name(rec.get("fused_attn")), checkpointed) if w]


def sweep_label(ctx: Context, rec: pd.Series | dict) -> str:
    """How plots and fit notes name a sweep over tokens (or a fit): model, batch size, for
    training steps the attention and checkpointing, and the environment where several."""
    extra = " ".join([f"b{int(rec['batch_size'])}", *_step_words(rec)])
    return _label(ctx, rec["model"], rec.get(ENV_COLUMN, ""), extra)


def add_benchmark(ctx: Context, profile: pd.DataFrame) -> None:
    """The benchmark table in the literature's form, with published figures and differences."""
    measured = measured_benchmark(ok_rows(profile))
    if measured.empty:
        return
    published = [has_published(r.model, r.img_size) for r in measured.itertuples()]
    measured = measured[published]
    if measured.empty:
        return
    doc = ctx.doc
    doc.heading("Benchmark table")
    doc.paragraph(
        "Measured parameters, MACs (one multiply-add counts once, as timm and the papers count "
        "them) and throughput at each model's own input size, with the published figures beside "
        "them and the relative difference. Throughput is the highest over the batch sizes "
        "measured, on this report's hardware, so its ratio to the published figure compares "
        "machines, not implementations. Top-1 is ImageNet-1k accuracy as published (vitbench "
        "does not evaluate on ImageNet)."
    )
    doc.warning(mixed_warning(ctx.envs, measured, "The benchmark table"))
    doc.table(benchmark_table(measured, ctx.sources, ctx.many_envs))
    settings = throughput_settings(measured)
    if settings:
        doc.paragraph("Published throughput was measured with: " + "; ".join(settings) + ".")
    if "train_throughput_sps" in measured:
        doc.paragraph(TRAIN_COLUMNS)
    papers = papers_table(measured, ctx.sources, ctx.many_envs)
    if not papers.empty:
        doc.heading("Against the papers", 3)
        doc.paragraph(
            "The original papers round their figures (ViT: 86M and 307M parameters), so "
            "differences of a few tenths of a percent are rounding."
        )
        doc.table(papers)


def sweeps(profile: pd.DataFrame, vary: str, fixed: tuple[str, ...]) -> list[pd.DataFrame]:
    """Groups of one run, model and the ``fixed`` columns in which ``vary`` takes 2+ values."""
    df = ok_rows(profile)
    keys = [k for k in ("run_id", "model", ENV_COLUMN, "precision", *fixed) if k in df]
    out = []
    for _, group in df.groupby(keys, sort=False, dropna=False):
        if group[vary].nunique() >= 2:
            out.append(group.sort_values(vary))
    return out


def _series(
    ctx: Context, group: pd.DataFrame, metric: str, fit: fits.Fit | None, scale: float
) -> plots.Series:
    """One sweep's points of ``metric``, with its stored fit drawn only if it is a law."""
    g = group[group[metric].notna()]
    law = fit is not None and fits.is_law(fit)
    return plots.Series(
        sweep_label(ctx, group.iloc[0]),
        g["tokens"].tolist(),
        (g[metric] * scale).tolist(),
        exponent=float(fit["exponent"]) if law else None,
        prefactor=float(fit["prefactor"]) * scale if law else None,
        note=None if fit is None else fits.plot_note(fit),
        fitted=fits.fitted_range(fit) if law else None,
        left_out=[] if fit is None else fits.left_out(fit),
    )


def scaling_panels(
    ctx: Context, groups: list[pd.DataFrame], stored: pd.DataFrame, metrics: Metrics
) -> list[plots.Panel]:
    """One log-log panel per cost metric against tokens, a series per sweep."""
    keyed = fits.by_key(stored)
    panels = []
    for metric, (title, unit, scale) in metrics.items():
        series = [
            _series(ctx, g, metric, keyed.get(_fit_key(g.iloc[0], metric)), scale)
            for g in groups
            if metric in g and g[metric].notna().sum() >= 2
        ]
        if series:
            panels.append(
                plots.Panel(title, "tokens", unit, series, logx=True, logy=True, base_x=2)
            )
    return panels


def _fit_key(first: pd.Series, metric: str) -> tuple:
    return (first.run_id, first.model, int(first.batch_size), row_mode(first), metric)


def add_scaling(ctx: Context, profile: pd.DataFrame, stored: pd.DataFrame) -> None:
    """Cost against the number of tokens, log-log, with the stored power-law fits."""
    groups = sweeps(profile, "tokens", ("batch_size",)) if "tokens" in profile else []
    if not groups:
        return
    panels = scaling_panels(ctx, groups, stored, COST_METRICS)
    doc = ctx.doc
    doc.heading("Cost against the number of tokens")
    doc.paragraph(
        "Each point is one input size. Where the power law cost ~ tokens^k that `vitbench "
        "profile` fitted and stored is rated good (three or more points, R² and 95% interval "
        "within the limits of docs/methodology/scaling.md), it is drawn dashed through the "
        "points with k and its interval beside it (attention alone would give k = 2, the "
        "per-token layers k = 1). Other sweeps join their points by a plain line, marked with "
        "why no law is drawn: two points make an exact line whatever the cost does, and a poor "
        "fit does not pin k down. Points whose timing was flagged noisy are left out of the "
        "latency fits. Memory is the peak of live tensor bytes during the forward pass over "
        "what was live before it (weights, inputs)."
    )
    doc.warning(mixed_warning(ctx.envs, pd.concat(groups), "This sweep"))
    if panels:
        doc.image(plots.panels(panels, ctx.figure("cost_vs_tokens")), "cost against tokens")
    points = pd.concat(groups)
    doc.table(format_columns(points, _point_columns(ctx, any_flagged(points))))
    if not stored.empty:
        add_fit_table(ctx, stored, COST_METRICS)


def any_flagged(points: pd.DataFrame) -> bool:
    """Whether any point's timing was flagged noisy."""
    return "latency_noisy" in points and bool(points["latency_noisy"].fillna(False).any())


def _point_columns(ctx: Context, flagged: bool) -> dict:
    """The points table's columns; ``noisy timing`` only when some point is flagged."""
    return {
        "model": ("model", str),
        ENV_COLUMN: ("env", str) if ctx.many_envs else None,
        "img_size": ("image (px)", lambda v: fmt(v, 0)),
        "patch_size": ("patch", lambda v: fmt(v, 0)),
        "seq_len": ("sequence length", lambda v: fmt(v, 0)),
        "batch_size": ("batch", lambda v: fmt(v, 0)),
        "tokens": ("tokens", lambda v: fmt(v, 0)),
        "macs": ("GMACs", lambda v: fmt_sig(v / 1e9)),
        "latency_median_ms": ("latency (ms)", fmt_sig),
        "latency_cv": ("latency CV", fmt_pct),
        "latency_noisy": ("noisy timing", lambda v: "yes" if v else "no") if flagged else None,
        "memory_peak_bytes": ("peak memory (MiB)", fmt_mib),
        "memory_peak_over_baseline_bytes": ("over weights and inputs (MiB)", fmt_mib),
    }


def add_fit_table(ctx: Context, stored: pd.DataFrame, metrics: Metrics) -> None:
    """The stored fits: exponent with its interval, R² or "exact line", points, rating; fits and
    their notes are named by ``metrics``' panel titles."""
    doc = ctx.doc
    doc.paragraph(
        "Fitted exponents (cost ~ tokens^exponent), with the 95% confidence interval of the "
        "exponent (t distribution on the log-log least squares), R² or, for two points, "
        "'exact line', the points used and the rating:"
    )
    columns = {
        "model": ("model", str),
        ENV_COLUMN: ("env", str) if ctx.many_envs else None,
        "batch_size": ("batch", lambda v: fmt(v, 0)),
        "fused_attn": ("attention", attention_name),
        "metric": ("metric", str),
        "exponent": ("exponent", lambda v: fmt(v, 3)),
        "interval": ("95% interval", str),
        "exponent_high": ("exponent, upper half of sizes", lambda v: fmt(v, 3)),
        "r2": ("R² (log-log)", str),
        "n_points": ("points", lambda v: fmt(v, 0)),
        "x_min": ("tokens from", lambda v: fmt(v, 0)),
        "x_max": ("tokens to", lambda v: fmt(v, 0)),
        "quality": ("fit", str),
        "excluded_points": ("left out", lambda v: fmt(v, 0)),
    }
    doc.table(format_columns(fits.cells(stored), columns))
    notes = fits.remarks(stored, lambda f: _fit_name(ctx, f, metrics))
    if notes:
        doc.paragraph("Fits not drawn as laws, and points left out of fits:")
        doc.paragraph("\n".join(f"- {n}" for n in notes))


def _fit_name(ctx: Context, fit: fits.Fit, metrics: Metrics) -> str:
    """A fit named as its plot's legend and panel name it."""
    metric = metrics.get(fit["metric"], (fit["metric"],))[0]
    return f"{sweep_label(ctx, fit)}, {metric}"


def batch_panels(ctx: Context, groups: list[pd.DataFrame], metrics: Metrics) -> list[plots.Panel]:
    """One panel per metric against batch size (log 2), a line per sweep where it has values."""
    panels = []
    for metric, (title, unit, scale) in metrics.items():
        series = [
            plots.Series(
                _batch_label(ctx, g.iloc[0]), g.batch_size.tolist(), (g[metric] * scale).tolist()
            )
            for g in groups
            if metric in g and g[metric].notna().any()
        ]
        if series:
            panels.append(plots.Panel(title, "batch size", unit, series, logx=True, base_x=2))
    return panels


def _batch_label(ctx: Context, first: pd.Series) -> str:
    """A sweep over batch sizes, named by its model, tokens (and training setting)."""
    extra = " ".join([f"{first.get('tokens')} tok", *_step_words(first)])
    return _label(ctx, first.model, first.get(ENV_COLUMN, ""), extra)


def add_batch_scaling(ctx: Context, profile: pd.DataFrame) -> None:
    """Throughput and utilization against batch size, for models measured at 2+ batch sizes."""
    if "throughput_sps" not in profile or "batch_size" not in profile:
        return
    groups = [g for g in sweeps(profile, "batch_size", SHAPE) if g["throughput_sps"].notna().any()]
    if not groups:
        return
    doc = ctx.doc
    doc.heading("Throughput against batch size")
    doc.warning(mixed_warning(ctx.envs, pd.concat(groups), "This plot"))
    panels = batch_panels(ctx, groups, BATCH_METRICS)
    doc.image(plots.panels(panels, ctx.figure("throughput_vs_batch")), "throughput vs batch")


def add_utilization(ctx: Context, profile: pd.DataFrame) -> None:
    """Achieved TFLOP/s against the peak of the hardware (MFU), per model and batch size (and
    mode, where training steps were measured)."""
    if "mfu" not in profile or profile["mfu"].notna().sum() == 0:
        return
    df = ok_rows(profile)
    df = with_mode(df[df["mfu"].notna()])
    df = latest(df, ["model", *SHAPE, "batch_size", ENV_COLUMN, "precision", "mode"])
    training = bool((df["mode"] == "train").any())
    doc = ctx.doc
    doc.heading("Utilization")
    doc.paragraph(
        "Model-FLOPs utilization: achieved FLOP/s (2 x MACs per second) over the peak FLOP/s of "
        "the device at that precision (the peak's source is named: a table, the user, or a "
        "matmul measured on this CPU)." + (TRAIN_MFU if training else "")
    )
    doc.warning(mixed_warning(ctx.envs, df, "The utilization table"))
    columns = {
        "model": ("model", str),
        ENV_COLUMN: ("env", str) if ctx.many_envs else None,
        "img_size": ("image (px)", lambda v: fmt(v, 0)),
        "batch_size": ("batch", lambda v: fmt(v, 0)),
        "mode": ("mode", str) if training else None,
        "precision": ("precision", str),
        "achieved_tflops": ("achieved TFLOP/s", fmt_sig),
        "peak_tflops": ("peak TFLOP/s", fmt_sig),
        "peak_source": ("peak from", str),
        "mfu": ("MFU", fmt_pct),
    }
    doc.table(format_columns(df, columns))
