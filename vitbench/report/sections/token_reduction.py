"""The token-reduction section: token merging (ToMe) and pruning (EViT) against the plain model.

Accuracy against throughput from the ``token_reduction`` table (a trained model tested at each
point), speedup against ``r`` per batch size from ``profile`` rows measured with merging, and
attention distance per layer from ``attention`` rows of reduced analyses. Each point is compared
with the plain model of its own run (``reduction`` none), never with another run's.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from vitbench.missing import is_missing
from vitbench.report import plots
from vitbench.report.context import Context
from vitbench.report.environment import ENV_COLUMN, mixed_warning
from vitbench.report.sections import cost
from vitbench.report.tables import (
    column_or_none,
    fmt,
    fmt_pct,
    fmt_sig,
    format_columns,
    row_mode,
)
from vitbench.token_reduction.settings import NONE, PRUNE, TOME

#: how each method reads
METHODS = {TOME: "merging (ToMe)", PRUNE: "pruning (EViT)"}
#: what must agree between a reduced profile point and the plain point it is compared with
PROFILE_KEYS = (
    "run_id",
    "model",
    ENV_COLUMN,
    "precision",
    *cost.SHAPE,
    "mode",
    "batch_size",
    "fused_attn",
)
#: what names one attention analysis apart from its reduction (as the attention section does)
ANALYSIS = ("model", "weights", "checkpoint", ENV_COLUMN)


def reduced(df: pd.DataFrame) -> pd.Series:
    """Which rows were measured with token merging or pruning."""
    method = column_or_none(df, "reduction")
    return method.map(lambda v: not is_missing(v) and v != NONE).astype(bool)


def point_name(rec: pd.Series | dict) -> str:
    """How a point reads: ``plain``, ``r=8`` (with a schedule other than constant) or
    ``keep 0.7``."""
    method = rec.get("reduction")
    if method == TOME:
        schedule = rec.get("tome_schedule")
        extra = "" if is_missing(schedule) or schedule == "constant" else f" {schedule}"
        return f"r={_number(rec.get('tome_r'))}{extra}"
    if method == PRUNE:
        return f"keep {_number(rec.get('prune_keep'))}"
    return "plain"


def _number(value: object) -> str:
    """A stored number as written (8, 0.7; a column with gaps reads them as floats), or a
    per-layer list as its text."""
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def _order(df: pd.DataFrame, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Sorted by the columns ``by``, then plain first, merging by r, pruning by falling keep
    rate."""
    rank = column_or_none(df, "reduction").map({TOME: 1, PRUNE: 2}).fillna(0)
    r = pd.to_numeric(column_or_none(df, "tome_r"), errors="coerce")
    keep = -pd.to_numeric(column_or_none(df, "prune_keep"), errors="coerce")
    ordered = df.assign(_rank=rank, _r=r, _keep=keep)
    keys = [*(k for k in by if k in df), "_rank", "_r", "_keep"]
    return ordered.sort_values(keys, kind="stable").drop(columns=["_rank", "_r", "_keep"])


def add_token_reduction(
    ctx: Context, points: pd.DataFrame, profile: pd.DataFrame, attention: pd.DataFrame
) -> None:
    """The section, when a trained model was tested with reduction, or reduced models were
    profiled or analysed; each part is left out when it has no rows."""
    timed = _speedups(profile)
    analyses = _attention_analyses(attention)
    if points.empty and timed.empty and not analyses:
        return
    doc = ctx.doc
    doc.heading("Token merging and pruning")
    doc.paragraph(
        "Token merging (ToMe, Bolya et al. 2023) merges r tokens in every block by bipartite "
        "soft matching; token pruning (EViT, Liang et al. 2022) keeps the tokens the class token "
        "attends to most and fuses the rest into one. Both are applied to a built model without "
        "retraining; each point is compared with the plain model of its own run."
    )
    if not points.empty:
        _accuracy(ctx, points)
    if not timed.empty:
        _speed(ctx, timed)
    if analyses:
        _distance(ctx, analyses)


def _run_title(first: pd.Series) -> str:
    dataset = first.get("dataset")
    return first["model"] if is_missing(dataset) else f"{first['model']} on {dataset}"


def _accuracy(ctx: Context, points: pd.DataFrame) -> None:
    """Test accuracy against images per second, a curve per method through the plain point."""
    runs = [_order(g) for _, g in points.groupby("run_id", sort=False)]
    doc = ctx.doc
    doc.heading("Accuracy against throughput", 3)
    doc.paragraph(
        "A trained model tested at each point (`vitbench train --tome ... --prune ...`): test "
        "accuracy against the images per second of the test pass on the device it ran on. "
        "Each curve starts at the plain model; MACs are per image, the matching's own included."
    )
    doc.warning(mixed_warning(ctx.envs, points, "This figure"))
    panels = [
        plots.Panel(_run_title(g.iloc[0]), "images / s", "test accuracy (%)", _method_series(g))
        for g in runs
    ]
    doc.image(
        plots.panels(panels, ctx.figure("token_reduction_accuracy")),
        "test accuracy against throughput, per token reduction method",
    )
    table = pd.concat([_against_plain(g) for g in runs])
    doc.table(
        format_columns(
            table.assign(point=table.apply(point_name, axis=1)), _acc_columns(ctx, table)
        )
    )


def _method_series(run: pd.DataFrame) -> list[plots.Series]:
    """One series per method in a run, each through the run's plain point."""
    plain = run[~reduced(run)]
    series = []
    for method, label in METHODS.items():
        rows = pd.concat([plain, run[column_or_none(run, "reduction") == method]])
        if len(rows) > len(plain):
            x, y = rows["images_per_s"].tolist(), (rows["test_acc"] * 100).tolist()
            series.append(plots.Series(label, x, y))
    return series


def _plain(rows: pd.DataFrame) -> pd.Series | None:
    """The plain point among ``rows`` (the latest, if measured more than once)."""
    plain = rows[~reduced(rows)]
    if plain.empty:
        return None
    return (
        plain.sort_values("timestamp", kind="stable").iloc[-1]
        if "timestamp" in plain
        else plain.iloc[-1]
    )


def _against_plain(run: pd.DataFrame) -> pd.DataFrame:
    """A run's points with images/s over the plain point's and the accuracy change in points."""
    base = _plain(run)
    if base is None:
        return run
    return run.assign(
        speedup=run["images_per_s"] / base["images_per_s"],
        acc_change=(run["test_acc"] - base["test_acc"]) * 100,
    )


def _macs_column(rows: pd.DataFrame) -> tuple[str, Callable[[object], str]]:
    """MACs per image in GMACs, or in MMACs for models under 0.1 GMACs (the digits model)."""
    macs = pd.to_numeric(column_or_none(rows, "macs"), errors="coerce")
    unit, scale = ("GMACs", 1e9) if not macs.max() < 1e8 else ("MMACs", 1e6)
    return unit, lambda v: fmt_sig(float(v) / scale)


def _acc_columns(ctx: Context, points: pd.DataFrame) -> dict:
    return {
        "model": ("model", str),
        ENV_COLUMN: ("env", str) if ctx.many_envs else None,
        "dataset": ("data", str),
        "reduction": ("method", str),
        "point": ("point", str),
        "tokens_per_layer": ("tokens per block", str),
        "macs": _macs_column(points),
        "test_acc": ("test accuracy", fmt_pct),
        "acc_change": ("change (points)", lambda v: f"{v:+.1f}"),
        "images_per_s": ("images/s", fmt_sig),
        "speedup": ("speedup", lambda v: f"{fmt(v)}x"),
    }


def _speedups(profile: pd.DataFrame) -> pd.DataFrame:
    """The reduced profile points timed, each with the latency of the plain point of its run
    and setting, and its speedup (the plain latency over its own)."""
    if profile.empty or "latency_median_ms" not in profile:
        return pd.DataFrame()
    timed = cost.ok_rows(profile)
    timed = timed[timed["latency_median_ms"].notna()]
    timed = timed.assign(mode=[row_mode(r) for r in timed.to_dict("records")])
    keys = [k for k in PROFILE_KEYS if k in timed]
    out = []
    for _, group in timed.groupby(keys, sort=False, dropna=False):
        base, points = _plain(group), group[reduced(group)]
        if base is not None and not points.empty:
            plain_ms = base["latency_median_ms"]
            out.append(
                points.assign(
                    plain_latency_ms=plain_ms, speedup=plain_ms / points["latency_median_ms"]
                )
            )
    return _order(pd.concat(out), by=("model", "mode", "batch_size")) if out else pd.DataFrame()


def _speed(ctx: Context, timed: pd.DataFrame) -> None:
    """Speedup against r, a line per batch size, and every reduced point timed."""
    doc = ctx.doc
    doc.heading("Speedup against r", 3)
    doc.paragraph(
        "`vitbench profile --tome ... --prune ...`: each point's speedup is the latency of the "
        "plain model over its own, in the same run, at the same image size, mode and batch "
        "size. Fewer tokens pay off only where the tokens are what keeps the device busy: on a "
        "small model or at batch 1, per-layer overheads and the matching's own cost can "
        "outweigh them (a speedup below 1x)."
    )
    doc.warning(mixed_warning(ctx.envs, timed, "This figure"))
    panels = _speed_panels(timed)
    if panels:
        doc.image(plots.panels(panels, ctx.figure("token_merging_speedup")), "speedup against r")
    doc.table(
        format_columns(
            timed.assign(point=timed.apply(point_name, axis=1)), _speed_columns(ctx, timed)
        )
    )


def _speed_panels(timed: pd.DataFrame) -> list[plots.Panel]:
    """One panel per model and setting merged: a line per batch size from r = 0 (the plain
    point, 1x)."""
    merged = timed[column_or_none(timed, "reduction") == TOME]
    merged = merged.assign(r=pd.to_numeric(merged["tome_r"], errors="coerce")).dropna(subset="r")
    keys = [k for k in PROFILE_KEYS if k in merged and k != "batch_size"]
    keys += [k for k in ("tome_schedule", "proportional_attn") if k in merged]
    panels = []
    for _, group in merged.groupby(keys, sort=False, dropna=False):
        series = [
            plots.Series(f"batch {int(b)}", [0, *g["r"]], [1.0, *g["speedup"]])
            for b, g in group.groupby("batch_size", sort=True)
        ]
        first = group.iloc[0]
        title = f"{first['model']}, {fmt(first.get('img_size'), 0)} px, {first['mode']}"
        panels.append(
            plots.Panel(title, "r (tokens merged per block)", "speedup (x)", series, integer_x=True)
        )
    return panels


def _speed_columns(ctx: Context, timed: pd.DataFrame) -> dict:
    return {
        "model": ("model", str),
        ENV_COLUMN: ("env", str) if ctx.many_envs else None,
        "img_size": ("image (px)", lambda v: fmt(v, 0)),
        "mode": ("mode", str),
        "batch_size": ("batch", lambda v: fmt(v, 0)),
        "reduction": ("method", str),
        "point": ("point", str),
        "tokens_per_layer": ("tokens per block", str),
        "macs": _macs_column(timed),
        "plain_latency_ms": ("plain latency (ms)", fmt_sig),
        "latency_median_ms": ("latency (ms)", fmt_sig),
        "speedup": ("speedup", lambda v: f"{fmt(v)}x"),
        "throughput_sps": ("images/s", fmt_sig),
    }


def _attention_analyses(attention: pd.DataFrame) -> list[pd.DataFrame]:
    """For each analysed model with reduced analyses, the rows of its latest analysis at each
    point (its plain one included)."""
    if attention.empty or "mean_distance_px" not in attention:
        return []
    rows = attention[attention["mean_distance_px"].notna()]
    rows = rows.assign(point=rows.apply(point_name, axis=1))
    out = []
    for _, group in rows.groupby([k for k in ANALYSIS if k in rows], sort=False, dropna=False):
        if reduced(group).any():
            ordered = (
                group.sort_values("timestamp", kind="stable") if "timestamp" in group else group
            )
            last = ordered.groupby("point")["run_id"].last()
            out.append(_order(group[group["run_id"] == group["point"].map(last)]))
    return out


def _distance(ctx: Context, analyses: list[pd.DataFrame]) -> None:
    """Mean attention distance per layer (over heads) at each point, a panel per model."""
    doc = ctx.doc
    doc.heading("Attention distance with merged tokens", 3)
    doc.paragraph(
        "`vitbench analyze attention --tome R`: the mean attention distance of each layer "
        "(averaged over its heads) at each point. A merged token sits at the mean centre of the "
        "patches it holds, so distances are measured between those centres."
    )
    doc.warning(mixed_warning(ctx.envs, pd.concat(analyses), "This figure"))
    panels = []
    for group in analyses:
        series = [
            plots.Series(point, by_layer.index.tolist(), by_layer.tolist())
            for point, g in group.groupby("point", sort=False)
            for by_layer in [g.groupby("layer")["mean_distance_px"].mean().sort_index()]
        ]
        first = group.iloc[0]
        title = f"{first['model']} ({first.get('weights', '?')})"
        panels.append(
            plots.Panel(title, "layer (depth)", "mean distance (px)", series, integer_x=True)
        )
    doc.image(
        plots.panels(panels, ctx.figure("token_merging_attention_distance")),
        "mean attention distance per layer at each r",
    )
