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
    benchmark_table,
    fmt,
    fmt_pct,
    fmt_sig,
    format_columns,
    has_published,
    latest,
    measured_benchmark,
    papers_table,
    throughput_settings,
)

SHAPE = ("img_size", "patch_size", "seq_len", "model_kwargs")

#: stored metric -> (panel title, y label, scale to the plotted unit)
COST_METRICS = {
    "macs": ("MACs per image", "GMACs", 1e-9),
    "latency_median_ms": ("latency (median)", "ms per batch", 1.0),
    "memory_peak_over_baseline_bytes": ("activation memory", "MiB", 1 / 2**20),
}


def _ok(profile: pd.DataFrame) -> pd.DataFrame:
    if "status" not in profile:
        return profile
    return profile[profile["status"].fillna("ok") == "ok"]


def _label(ctx: Context, model: str, env: str, extra: str = "") -> str:
    parts = [model, extra] if extra else [model]
    if ctx.many_envs:
        parts.append(env)
    return " ".join(parts)


def add_benchmark(ctx: Context, profile: pd.DataFrame) -> None:
    """The benchmark table in the literature's form, with published figures and differences."""
    measured = measured_benchmark(_ok(profile))
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
    papers = papers_table(measured, ctx.sources, ctx.many_envs)
    if not papers.empty:
        doc.heading("Against the papers", 3)
        doc.paragraph(
            "The original papers round their figures (ViT: 86M and 307M parameters), so "
            "differences of a few tenths of a percent are rounding."
        )
        doc.table(papers)


def _sweeps(profile: pd.DataFrame, vary: str, fixed: tuple[str, ...]) -> list[pd.DataFrame]:
    """Groups of one run, model and the ``fixed`` columns in which ``vary`` takes 2+ values."""
    df = _ok(profile)
    keys = [k for k in ("run_id", "model", ENV_COLUMN, "precision", *fixed) if k in df]
    out = []
    for _, group in df.groupby(keys, sort=False, dropna=False):
        if group[vary].nunique() >= 2:
            out.append(group.sort_values(vary))
    return out


def _series(ctx: Context, group: pd.DataFrame, metric: str, fit: fits.Fit | None) -> plots.Series:
    """One sweep's points of ``metric``, with its stored fit drawn only if it is a law."""
    scale = COST_METRICS[metric][2]
    first = group.iloc[0]
    g = group[group[metric].notna()]
    law = fit is not None and fits.is_law(fit)
    return plots.Series(
        _label(ctx, first.model, first.get(ENV_COLUMN, ""), f"b{int(first.batch_size)}"),
        g["tokens"].tolist(),
        (g[metric] * scale).tolist(),
        exponent=float(fit["exponent"]) if law else None,
        prefactor=float(fit["prefactor"]) * scale if law else None,
        note=None if fit is None else fits.plot_note(fit),
        fitted=fits.fitted_range(fit) if law else None,
        left_out=[] if fit is None else fits.left_out(fit),
    )


def _scaling_panels(ctx: Context, sweeps: list[pd.DataFrame], stored: pd.DataFrame) -> list:
    """One log-log panel per cost metric, a series per sweep."""
    keyed = fits.by_key(stored)
    panels = []
    for metric, (title, unit, _) in COST_METRICS.items():
        series = [
            _series(ctx, g, metric, keyed.get(_fit_key(g.iloc[0], metric)))
            for g in sweeps
            if metric in g and g[metric].notna().sum() >= 2
        ]
        if series:
            panels.append(
                plots.Panel(title, "tokens", unit, series, logx=True, logy=True, base_x=2)
            )
    return panels


def _fit_key(first: pd.Series, metric: str) -> tuple:
    return (first.run_id, first.model, int(first.batch_size), metric)


def add_scaling(ctx: Context, profile: pd.DataFrame, stored: pd.DataFrame) -> None:
    """Cost against the number of tokens, log-log, with the stored power-law fits."""
    sweeps = _sweeps(profile, "tokens", ("batch_size",)) if "tokens" in profile else []
    if not sweeps:
        return
    panels = _scaling_panels(ctx, sweeps, stored)
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
    doc.warning(mixed_warning(ctx.envs, pd.concat(sweeps), "This sweep"))
    if panels:
        doc.image(plots.panels(panels, ctx.figure("cost_vs_tokens")), "cost against tokens")
    points = pd.concat(sweeps)
    doc.table(format_columns(points, _point_columns(ctx, _any_flagged(points))))
    if not stored.empty:
        add_fit_table(ctx, stored)


def _any_flagged(points: pd.DataFrame) -> bool:
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
        "memory_peak_bytes": ("peak memory (MiB)", lambda v: fmt_sig(v / 2**20)),
        "memory_peak_over_baseline_bytes": (
            "over weights and inputs (MiB)",
            lambda v: fmt_sig(v / 2**20),
        ),
    }


def add_fit_table(ctx: Context, stored: pd.DataFrame) -> None:
    """The stored fits: exponent with its interval, R² or "exact line", points, rating."""
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
    notes = fits.remarks(stored, lambda f: _fit_name(ctx, f))
    if notes:
        doc.paragraph("Fits not drawn as laws, and points left out of fits:")
        doc.paragraph("\n".join(f"- {n}" for n in notes))


def _fit_name(ctx: Context, fit: fits.Fit) -> str:
    """A fit named as its plot's legend and panel name it."""
    metric = COST_METRICS.get(fit["metric"], (fit["metric"],))[0]
    label = _label(ctx, fit["model"], fit.get(ENV_COLUMN, ""), f"b{int(fit['batch_size'])}")
    return f"{label}, {metric}"


def add_batch_scaling(ctx: Context, profile: pd.DataFrame) -> None:
    """Throughput and utilization against batch size, for models measured at 2+ batch sizes."""
    if "throughput_sps" not in profile or "batch_size" not in profile:
        return
    sweeps = [g for g in _sweeps(profile, "batch_size", SHAPE) if g["throughput_sps"].notna().any()]
    if not sweeps:
        return
    doc = ctx.doc
    doc.heading("Throughput against batch size")
    doc.warning(mixed_warning(ctx.envs, pd.concat(sweeps), "This plot"))
    series = []
    mfu = []
    for g in sweeps:
        first = g.iloc[0]
        label = _label(ctx, first.model, first.get(ENV_COLUMN, ""), f"{first.get('tokens')} tok")
        series.append(plots.Series(label, g.batch_size.tolist(), g.throughput_sps.tolist()))
        if "mfu" in g and g.mfu.notna().any():
            mfu.append(plots.Series(label, g.batch_size.tolist(), (100 * g.mfu).tolist()))
    panels = [plots.Panel("throughput", "batch size", "images / s", series, logx=True, base_x=2)]
    if mfu:
        panels.append(
            plots.Panel("model-FLOPs utilization", "batch size", "MFU (%)", mfu, True, False, 2)
        )
    doc.image(plots.panels(panels, ctx.figure("throughput_vs_batch")), "throughput vs batch")


def add_utilization(ctx: Context, profile: pd.DataFrame) -> None:
    """Achieved TFLOP/s against the peak of the hardware (MFU), per model and batch size."""
    if "mfu" not in profile or profile["mfu"].notna().sum() == 0:
        return
    df = _ok(profile)
    df = df[df["mfu"].notna()]
    df = latest(df, ["model", *SHAPE, "batch_size", ENV_COLUMN, "precision"])
    doc = ctx.doc
    doc.heading("Utilization")
    doc.paragraph(
        "Model-FLOPs utilization: achieved FLOP/s (2 x MACs per second) over the peak FLOP/s of "
        "the device at that precision (the peak's source is named: a table, the user, or a "
        "matmul measured on this CPU)."
    )
    doc.warning(mixed_warning(ctx.envs, df, "The utilization table"))
    columns = {
        "model": ("model", str),
        ENV_COLUMN: ("env", str) if ctx.many_envs else None,
        "img_size": ("image (px)", lambda v: fmt(v, 0)),
        "batch_size": ("batch", lambda v: fmt(v, 0)),
        "precision": ("precision", str),
        "achieved_tflops": ("achieved TFLOP/s", fmt_sig),
        "peak_tflops": ("peak TFLOP/s", fmt_sig),
        "peak_source": ("peak from", str),
        "mfu": ("MFU", fmt_pct),
    }
    doc.table(format_columns(df, columns))
