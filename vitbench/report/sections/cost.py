"""Cost sections from the ``profile`` and ``profile_fit`` tables.

The benchmark table against published figures; cost against tokens on log-log axes with the
stored power-law exponents; throughput and utilization against batch size.
"""

from __future__ import annotations

import pandas as pd

from vitbench.missing import is_missing
from vitbench.report import plots
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


def _fits(fits: pd.DataFrame) -> dict[tuple, tuple[float, float]]:
    """(run_id, model, batch_size, metric) -> stored (exponent, prefactor)."""
    need = {"run_id", "model", "batch_size", "metric", "exponent", "prefactor"}
    if fits.empty or not need <= set(fits.columns):
        return {}
    return {
        (r.run_id, r.model, int(r.batch_size), r.metric): (float(r.exponent), float(r.prefactor))
        for r in fits.itertuples()
        if not (is_missing(r.exponent) or is_missing(r.prefactor) or is_missing(r.batch_size))
    }


def add_scaling(ctx: Context, profile: pd.DataFrame, fits: pd.DataFrame) -> None:
    """Cost against the number of tokens, log-log, with the stored power-law exponents."""
    sweeps = _sweeps(profile, "tokens", ("batch_size",)) if "tokens" in profile else []
    if not sweeps:
        return
    exponents = _fits(fits)
    panels = []
    for metric, (title, unit, scale) in COST_METRICS.items():
        series = []
        for group in sweeps:
            if metric not in group or group[metric].notna().sum() < 2:
                continue
            first = group.iloc[0]
            g = group[group[metric].notna()]
            fit = exponents.get((first.run_id, first.model, int(first.batch_size), metric))
            series.append(
                plots.Series(
                    _label(ctx, first.model, first.get(ENV_COLUMN, ""), f"b{first.batch_size}"),
                    g["tokens"].tolist(),
                    (g[metric] * scale).tolist(),
                    exponent=None if fit is None else fit[0],
                    prefactor=None if fit is None else fit[1] * scale,
                )
            )
        if series:
            panels.append(
                plots.Panel(title, "tokens", unit, series, logx=True, logy=True, base_x=2)
            )
    doc = ctx.doc
    doc.heading("Cost against the number of tokens")
    doc.paragraph(
        "Each point is one input size; dashed lines are the power laws cost ~ tokens^k that "
        "`vitbench profile` fitted and stored, with k written beside them (attention alone "
        "would give k = 2, the per-token layers k = 1; points without a stored fit are joined "
        "by a plain line). Memory is the peak of live tensor bytes during the forward pass "
        "over what was live before it (weights, inputs)."
    )
    doc.warning(mixed_warning(ctx.envs, pd.concat(sweeps), "This sweep"))
    if panels:
        doc.image(plots.panels(panels, ctx.figure("cost_vs_tokens")), "cost against tokens")
    points = pd.concat(sweeps)
    doc.table(
        format_columns(
            points,
            {
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
                "memory_peak_bytes": ("peak memory (MiB)", lambda v: fmt_sig(v / 2**20)),
                "memory_peak_over_baseline_bytes": (
                    "over weights and inputs (MiB)",
                    lambda v: fmt_sig(v / 2**20),
                ),
            },
        )
    )
    if not fits.empty:
        add_fit_table(ctx, fits)


def add_fit_table(ctx: Context, fits: pd.DataFrame) -> None:
    doc = ctx.doc
    doc.paragraph("Fitted exponents (cost ~ tokens^exponent):")
    columns = {
        "model": ("model", str),
        ENV_COLUMN: ("env", str) if ctx.many_envs else None,
        "batch_size": ("batch", lambda v: fmt(v, 0)),
        "metric": ("metric", str),
        "exponent": ("exponent", lambda v: fmt(v, 3)),
        "exponent_high": ("exponent, upper half of sizes", lambda v: fmt(v, 3)),
        "r2": ("R² (log-log)", lambda v: fmt(v, 4)),
        "n_points": ("points", lambda v: fmt(v, 0)),
        "x_min": ("tokens from", lambda v: fmt(v, 0)),
        "x_max": ("tokens to", lambda v: fmt(v, 0)),
    }
    doc.table(format_columns(fits, columns))


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
