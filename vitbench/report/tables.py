"""Report tables built with pandas from stored rows: each function returns display-ready text.

Cells are formatted here (units in the column names), so the markdown writer only lays them
out. A missing value prints as ``-``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence

import pandas as pd

from vitbench.missing import MISSING, is_missing
from vitbench.reference import published_rows
from vitbench.report.environment import ENV_COLUMN


def fmt(value: object, digits: int = 2) -> str:
    """A number with ``digits`` decimals and thousands separators; ``-`` when missing."""
    if is_missing(value):
        return MISSING
    if isinstance(value, str):
        return value
    return f"{float(value):,.{digits}f}"


def fmt_sig(value: object, sig: int = 3) -> str:
    """A number to ``sig`` significant figures (for values spanning decades)."""
    if is_missing(value):
        return MISSING
    v = float(value)
    if v == 0:
        return "0"
    digits = max(0, sig - 1 - math.floor(math.log10(abs(v))))
    return f"{v:,.{digits}f}"


def fmt_diff(measured: object, published: object) -> str:
    """Relative difference of a measured figure from a published one, as a signed percentage."""
    if is_missing(measured) or is_missing(published) or float(published) == 0:
        return MISSING
    diff = 100 * (float(measured) / float(published) - 1)
    return "0.00%" if abs(diff) < 0.005 else f"{diff:+.2f}%"


def fmt_ratio(measured: object, published: object) -> str:
    if is_missing(measured) or is_missing(published) or float(published) == 0:
        return MISSING
    return f"{float(measured) / float(published):.3g}x"


def fmt_pct(value: object, digits: int = 1) -> str:
    """A fraction as a percentage."""
    return MISSING if is_missing(value) else f"{100 * float(value):.{digits}f}%"


def latest(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The most recent row for each combination of ``keys`` (by timestamp, then file order)."""
    if df.empty:
        return df
    keys = [k for k in keys if k in df]
    order = df.sort_values("timestamp", kind="stable") if "timestamp" in df else df
    return order.drop_duplicates(subset=keys, keep="last")


def column_or_none(df: pd.DataFrame, name: str) -> pd.Series:
    """``df[name]``, or missing values where the table has no such column."""
    return df[name] if name in df else pd.Series([None] * len(df), index=df.index)


def default_shape(df: pd.DataFrame) -> pd.Series:
    """Rows at the model's own shape: no patch, sequence or keyword overrides."""
    mask = pd.Series(True, index=df.index)
    for name in ("patch_size", "seq_len", "model_kwargs"):
        mask &= column_or_none(df, name).map(is_missing)
    return mask


class Sources:
    """Numbers the published sources in order of first citation: ``[1]``, ``[2]``, ..."""

    def __init__(self) -> None:
        self.cited: list[str] = []

    def cite(self, source: str) -> str:
        if source not in self.cited:
            self.cited.append(source)
        return f"[{self.cited.index(source) + 1}]"


def measured_benchmark(profile: pd.DataFrame) -> pd.DataFrame:
    """One row per model, image size, environment and precision, at the model's own shape.

    Throughput is the highest over the batch sizes measured (the most recent row of each),
    as the literature reports it; ``batch_size`` says where.
    """
    if profile.empty:
        return profile
    df = profile[default_shape(profile)]
    if "status" in df:
        df = df[column_or_none(df, "status").fillna("ok") == "ok"]
    groups = ["model", "img_size", ENV_COLUMN, "precision"]
    groups = [g for g in groups if g in df]
    df = latest(df, [*groups, "batch_size"])
    rows = []
    for _, group in df.groupby(groups, sort=False, dropna=False):
        first = group.iloc[0]
        tput = column_or_none(group, "throughput_sps")
        best = group.loc[tput.idxmax()] if tput.notna().any() else None
        macs = column_or_none(group, "macs").dropna()
        rows.append(
            {
                **{g: first[g] for g in groups},
                "params": first.get("params"),
                "macs": macs.iloc[0] if not macs.empty else None,
                "throughput_sps": None if best is None else best["throughput_sps"],
                "batch_size": None if best is None else best["batch_size"],
            }
        )
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows)
    first_seen = {m: i for i, m in enumerate(dict.fromkeys(profile["model"]))}
    return out.sort_values("model", key=lambda s: s.map(first_seen), kind="stable")


def _setting(rec: dict) -> str:
    """Where a measured throughput comes from: batch size and precision."""
    if is_missing(rec.get("throughput_sps")):
        return MISSING
    parts = [f"batch {fmt(rec.get('batch_size'), 0)}"]
    if not is_missing(rec.get("precision")):
        parts.append(str(rec["precision"]))
    return ", ".join(parts)


def benchmark_table(measured: pd.DataFrame, sources: Sources, envs_shown: bool) -> pd.DataFrame:
    """The benchmark table in the literature's form, timm's published figures beside ours."""
    rows = []
    for rec in measured.to_dict("records"):
        pubs = published_rows(rec["model"], rec.get("img_size"), "timm")
        pub = pubs[0] if pubs else {}
        params_m = None if is_missing(rec.get("params")) else rec["params"] / 1e6
        gmacs = None if is_missing(rec.get("macs")) else rec["macs"] / 1e9
        row = {"model": rec["model"], "image (px)": fmt(rec.get("img_size"), 0)}
        if envs_shown:
            row["env"] = rec[ENV_COLUMN]
        row.update(
            {
                "params (M)": fmt(params_m),
                "published params (M)": fmt(pub.get("params_m")),
                "Δ params": fmt_diff(params_m, pub.get("params_m")),
                "GMACs": fmt(gmacs),
                "published GMACs": fmt(pub.get("gmacs")),
                "Δ GMACs": fmt_diff(gmacs, pub.get("gmacs")),
                "throughput (img/s)": fmt_sig(rec.get("throughput_sps")),
                "measured at": _setting(rec),
                "published throughput (img/s)": fmt_sig(pub.get("throughput_sps")),
                "measured / published": fmt_ratio(
                    rec.get("throughput_sps"), pub.get("throughput_sps")
                ),
                "top-1 (%, published)": fmt(pub.get("top1")),
                "source": sources.cite(pub["source"]) if pub else MISSING,
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def papers_table(measured: pd.DataFrame, sources: Sources, envs_shown: bool) -> pd.DataFrame:
    """The papers' own figures (ViT, DeiT, Swin) beside the measured counts."""
    rows = []
    for rec in measured.to_dict("records"):
        params_m = None if is_missing(rec.get("params")) else rec["params"] / 1e6
        gmacs = None if is_missing(rec.get("macs")) else rec["macs"] / 1e9
        for pub in published_rows(rec["model"], rec.get("img_size")):
            if pub["source"].startswith("timm"):
                continue
            row = {"model": rec["model"]}
            if envs_shown:
                row["env"] = rec[ENV_COLUMN]
            row.update(
                {
                    "paper": sources.cite(pub["source"]),
                    "params (M)": fmt(params_m),
                    "paper params (M)": fmt(pub.get("params_m"), 0),
                    "Δ params": fmt_diff(params_m, pub.get("params_m")),
                    "GMACs": fmt(gmacs),
                    "paper GMACs": fmt(pub.get("gmacs"), 1),
                    "Δ GMACs": fmt_diff(gmacs, pub.get("gmacs")),
                    "paper throughput (img/s)": fmt_sig(pub.get("throughput_sps")),
                    "paper setting": fmt(pub.get("throughput_setting")),
                    "paper top-1 (%)": fmt(pub.get("top1"), 1),
                }
            )
            rows.append(row)
    return pd.DataFrame(rows)


def throughput_settings(measured: pd.DataFrame) -> list[str]:
    """The published throughput settings of the models in the table (for a footnote)."""
    settings = []
    for rec in measured.to_dict("records"):
        for pub in published_rows(rec["model"], rec.get("img_size"), "timm"):
            setting = pub.get("throughput_setting")
            if not is_missing(setting) and setting not in settings:
                settings.append(setting)
    return settings


def format_columns(
    df: pd.DataFrame, columns: dict[str, tuple[str, Callable[[object], str]] | None]
) -> pd.DataFrame:
    """Select, rename and format columns: ``{stored: (printed, formatter)}``.

    Columns the frame lacks, whose spec is None, or with no value in any row are left out.
    """
    out = pd.DataFrame(index=df.index)
    for stored, spec in columns.items():
        if spec is not None and stored in df and df[stored].notna().any():
            printed, formatter = spec
            out[printed] = df[stored].map(lambda v, f=formatter: MISSING if is_missing(v) else f(v))
    return out.reset_index(drop=True)


def has_published(model: str, img_size: object) -> bool:
    """Whether any source publishes figures for this model at this image size."""
    return bool(published_rows(model, img_size))


def parse_json_cell(value: object) -> object:
    """A container stored as JSON text in a CSV cell (the store's convention), else None."""
    if is_missing(value):
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value
