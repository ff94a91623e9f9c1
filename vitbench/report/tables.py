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
from vitbench.reference import TIMM_INFER, TIMM_TRAIN, published_for, published_rows
from vitbench.report.environment import ENV_COLUMN


def fmt(value: object, digits: int = 2) -> str:
    """A number with ``digits`` decimals and thousands separators; ``-`` when missing."""
    if is_missing(value):
        return MISSING
    if isinstance(value, str):
        return value
    return f"{float(value):,.{digits}f}"


def fmt_mib(value: object) -> str:
    """Bytes as MiB to 3 significant figures."""
    return MISSING if is_missing(value) else fmt_sig(float(value) / 2**20)


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


def row_mode(rec: pd.Series | dict) -> str:
    """One row's mode (see :func:`with_mode`)."""
    mode = rec.get("mode")
    return "infer" if is_missing(mode) else str(mode)


def with_mode(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with each row's mode, ``infer`` or ``train``; rows stored before training steps
    were measured have none and are inference."""
    return df.assign(mode=column_or_none(df, "mode").fillna("infer"))


def flag(value: object) -> bool:
    """Whether an on/off cell is on (a missing cell is off)."""
    return not is_missing(value) and bool(value)


def attention_name(fused: object) -> str:
    """How a row's attention reads in labels: ``fused``, ``eager``, or empty when not stored."""
    return "" if is_missing(fused) else "fused" if fused else "eager"


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


#: a group's training figures in the benchmark table -> the stored column each comes from
TRAIN_FIGURES = {
    "train_throughput_sps": "throughput_sps",
    "train_batch_size": "batch_size",
    "train_step_ms": "latency_median_ms",
    "train_macs": "train_macs",
    "train_memory_peak_bytes": "train_memory_peak_bytes",
    "optimizer": "optimizer",
    "grad_checkpointing": "grad_checkpointing",
}


def _fastest(df: pd.DataFrame) -> pd.Series | None:
    """The row of the highest throughput, or None when no row has one."""
    tput = column_or_none(df, "throughput_sps")
    return df.loc[tput.idxmax()] if tput.notna().any() else None


def _train_figures(train: pd.DataFrame) -> dict:
    """A group's training figures, at the batch size of its highest training throughput."""
    best = _fastest(train)
    rec = train.iloc[0] if best is None else best
    return {name: rec.get(column) for name, column in TRAIN_FIGURES.items()}


def measured_benchmark(profile: pd.DataFrame) -> pd.DataFrame:
    """One row per model, image size, environment and precision, at the model's own shape.

    Throughput is the highest over the batch sizes measured (the most recent row of each),
    as the literature reports it; ``batch_size`` says where. Where training steps were
    measured, the row also has the :data:`TRAIN_FIGURES`, at the fastest training batch size.
    """
    if profile.empty:
        return profile
    df = with_mode(profile[default_shape(profile)])
    if "status" in df:
        df = df[column_or_none(df, "status").fillna("ok") == "ok"]
    groups = ["model", "img_size", ENV_COLUMN, "precision"]
    groups = [g for g in groups if g in df]
    df = latest(df, [*groups, "mode", "batch_size"])
    rows = []
    for _, group in df.groupby(groups, sort=False, dropna=False):
        first = group.iloc[0]
        best = _fastest(group[group["mode"] == "infer"])
        macs = column_or_none(group, "macs").dropna()
        train = group[group["mode"] == "train"]
        rows.append(
            {
                **{g: first[g] for g in groups},
                "params": first.get("params"),
                "macs": macs.iloc[0] if not macs.empty else None,
                "throughput_sps": None if best is None else best["throughput_sps"],
                "batch_size": None if best is None else best["batch_size"],
                **({} if train.empty else _train_figures(train)),
            }
        )
    if not rows:
        return pd.DataFrame()
    out = pd.DataFrame(rows)
    first_seen = {m: i for i, m in enumerate(dict.fromkeys(profile["model"]))}
    return out.sort_values("model", key=lambda s: s.map(first_seen), kind="stable")


def _setting(rec: dict, prefix: str = "") -> str:
    """Where a measured throughput comes from: batch size and precision (and, for the training
    figures, ``prefix`` ``train_``, the optimizer and gradient checkpointing)."""
    if is_missing(rec.get(f"{prefix}throughput_sps")):
        return MISSING
    parts = [f"batch {fmt(rec.get(f'{prefix}batch_size'), 0)}"]
    for key in ("precision", "optimizer") if prefix else ("precision",):
        if not is_missing(rec.get(key)):
            parts.append(str(rec[key]))
    if prefix and flag(rec.get("grad_checkpointing")):
        parts.append("gradient checkpointing")
    return ", ".join(parts)


def benchmark_table(measured: pd.DataFrame, sources: Sources, envs_shown: bool) -> pd.DataFrame:
    """The benchmark table in the literature's form, timm's published figures beside ours;
    training columns (timm's training benchmark beside them) where training steps were measured."""
    training = "train_throughput_sps" in measured
    rows = []
    for rec in measured.to_dict("records"):
        pub = published_for(rec["model"], rec.get("img_size")) or {}
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
            }
        )
        cited = [pub["source"]] if pub else []
        if training:
            train_pub = published_for(rec["model"], rec.get("img_size"), TIMM_TRAIN) or {}
            row.update(_train_cells(rec, train_pub))
            cited += [train_pub["source"]] if train_pub else []
        row["top-1 (%, published)"] = fmt(pub.get("top1"))
        row["source"] = ", ".join(sources.cite(s) for s in cited) or MISSING
        rows.append(row)
    return pd.DataFrame(rows)


def _train_cells(rec: dict, pub: dict) -> dict[str, str]:
    """A benchmark row's training columns: the measured step beside timm's training benchmark."""
    macs = rec.get("train_macs")
    return {
        "train GMACs": fmt(None if is_missing(macs) else macs / 1e9),
        "step time (ms)": fmt_sig(rec.get("train_step_ms")),
        "train throughput (img/s)": fmt_sig(rec.get("train_throughput_sps")),
        "train peak memory (MiB)": fmt_mib(rec.get("train_memory_peak_bytes")),
        "train measured at": _setting(rec, "train_"),
        "published train throughput (img/s)": fmt_sig(pub.get("train_throughput_sps")),
        "published train setting": fmt(pub.get("train_throughput_setting")),
        "train measured / published": fmt_ratio(
            rec.get("train_throughput_sps"), pub.get("train_throughput_sps")
        ),
    }


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
        for pub in published_rows(rec["model"], rec.get("img_size"), TIMM_INFER):
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
