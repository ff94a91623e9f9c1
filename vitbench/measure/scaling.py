"""Power-law fits of cost against the number of tokens: y = prefactor * x ** exponent.

A transformer's cost is a sum a*N + b*N^2 (per-token layers, attention), so a single exponent
lies between 1 and 2 and rises with N; ``exponent_high`` fits only the largest sizes to show the
quadratic term taking over. See docs/methodology/scaling.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class PowerLawFit:
    """Least-squares fit of log y = log prefactor + exponent * log x."""

    exponent: float
    prefactor: float
    r2: float  # coefficient of determination in log-log space
    n_points: int
    exponent_high: float | None  # the same fit over the upper half of the distinct x values
    x_min: float
    x_max: float


def _loglog_line(lx: np.ndarray, ly: np.ndarray) -> tuple[float, float, float]:
    """(slope, intercept, r2) of least squares ly ~ lx."""
    slope, intercept = np.polyfit(lx, ly, 1)
    resid = ly - (slope * lx + intercept)
    total = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / total if total > 0 else 1.0
    return float(slope), float(intercept), r2


def fit_power_law(x: Iterable[float], y: Iterable[float]) -> PowerLawFit:
    """Fit y = prefactor * x^exponent on log-log axes.

    Pairs where x or y is not a positive finite number are dropped. ``exponent_high`` is the
    slope over the largest ceil(m/2) distinct x values (at least 2), None when m < 3.
    Raises ValueError when fewer than 2 distinct x remain.
    """
    xs = np.asarray(list(x), dtype=float)
    ys = np.asarray(list(y), dtype=float)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y differ in length: {xs.size} vs {ys.size}")
    keep = np.isfinite(xs) & np.isfinite(ys) & (xs > 0) & (ys > 0)
    xs, ys = xs[keep], ys[keep]
    distinct = np.unique(xs)  # sorted
    if distinct.size < 2:
        raise ValueError("a power law needs at least 2 distinct positive x values")
    lx, ly = np.log(xs), np.log(ys)
    exponent, intercept, r2 = _loglog_line(lx, ly)
    exponent_high = None
    if distinct.size >= 3:
        cut = distinct[-max(2, math.ceil(distinct.size / 2))]
        high = xs >= cut
        exponent_high = _loglog_line(lx[high], ly[high])[0]
    return PowerLawFit(
        exponent=exponent,
        prefactor=math.exp(intercept),
        r2=r2,
        n_points=int(xs.size),
        exponent_high=exponent_high,
        x_min=float(distinct[0]),
        x_max=float(distinct[-1]),
    )


def _number(value: Any) -> float | None:
    """A finite float, or None for missing values (None, NaN, non-numbers)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fit_scaling(
    records: Sequence[dict[str, Any]],
    x: str = "tokens",
    ys: Sequence[str] = ("macs", "latency_median_ms", "memory_peak_over_baseline_bytes"),
    group_by: Sequence[str] = ("model", "batch_size"),
) -> list[dict[str, Any]]:
    """One power-law fit per group and metric, as flat records.

    Records are grouped by the ``group_by`` fields; within a group, a metric is fitted over the
    records where both ``x`` and the metric are numbers. Groups or metrics with fewer than 2
    distinct x values are skipped.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(tuple(rec.get(k) for k in group_by), []).append(rec)
    rows = []
    for key, members in groups.items():
        for metric in ys:
            pairs = [(_number(r.get(x)), _number(r.get(metric))) for r in members]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            try:
                fit = fit_power_law([a for a, _ in pairs], [b for _, b in pairs])
            except ValueError:  # fewer than 2 distinct positive x
                continue
            rows.append(
                {
                    **dict(zip(group_by, key, strict=True)),
                    "x": x,
                    "metric": metric,
                    "exponent": fit.exponent,
                    "exponent_high": fit.exponent_high,
                    "prefactor": fit.prefactor,
                    "r2": fit.r2,
                    "n_points": fit.n_points,
                    "x_min": fit.x_min,
                    "x_max": fit.x_max,
                }
            )
    return rows
