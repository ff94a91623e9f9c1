"""Power-law fits of cost against the number of tokens: y = prefactor * x ** exponent.

A transformer's cost is a sum a*N + b*N^2 (per-token layers, attention), so a single exponent
lies between 1 and 2 and rises with N; ``exponent_high`` fits only the largest sizes to show the
quadratic term taking over. A fit says how good it is: two points make an exact line (no R², no
interval); three or more give R², the exponent's standard error and a 95% confidence interval,
and a verdict (``quality``). Points whose timing is flagged noisy are left out of timing fits,
and the fit says so. See docs/methodology/scaling.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitbench.missing import is_missing

#: confidence level of the exponent's interval
LEVEL = 0.95
#: a fit of 3+ points is "good" when R² (log-log) is at least this ...
R2_GOOD = 0.98
#: ... and its 95% interval is at most +- this wide; otherwise it is "poor"
HALF_WIDTH_GOOD = 0.1
#: the record flag that marks a point's timing as unreliable
TIMING_FLAG = "latency_noisy"
#: metrics measured by timing (prefixes): fitted without the points the flag marks
TIMED = ("latency_", "throughput_", "achieved_tflops", "mfu")


@dataclass
class PowerLawFit:
    """Least-squares fit of log y = log prefactor + exponent * log x."""

    exponent: float
    prefactor: float
    n_points: int
    x_used: list[float]  # x of the points fitted, sorted (repeats kept)
    exponent_high: float | None  # the same fit over the upper half of the distinct x values
    r2: float | None  # coefficient of determination in log-log space; None for 2 points
    exponent_se: float | None  # standard error of the exponent; None for 2 points
    exponent_ci95: tuple[float, float] | None  # t interval with n - 2 degrees of freedom

    @property
    def x_min(self) -> float:
        return self.x_used[0]

    @property
    def x_max(self) -> float:
        return self.x_used[-1]

    def quality(self) -> tuple[str, str | None]:
        """("exact" | "good" | "poor", why) by the rule in docs/methodology/scaling.md."""
        if self.exponent_ci95 is None or self.r2 is None:
            return "exact", f"{self.n_points} points: an exact line, no R² or interval"
        half = (self.exponent_ci95[1] - self.exponent_ci95[0]) / 2
        why = []
        if self.r2 < R2_GOOD:
            why.append(f"R² {self.r2:.3f} below {R2_GOOD}")
        if half > HALF_WIDTH_GOOD:
            why.append(f"95% interval ±{half:.2f} wider than ±{HALF_WIDTH_GOOD}")
        return ("poor", "poor fit: " + "; ".join(why)) if why else ("good", None)


def _line(lx: np.ndarray, ly: np.ndarray) -> tuple[float, float, float, float]:
    """(slope, intercept, residual sum of squares, Sxx) of least squares ly ~ lx."""
    dx = lx - lx.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ (ly - ly.mean())) / sxx
    intercept = float(ly.mean()) - slope * float(lx.mean())
    resid = ly - (intercept + slope * lx)
    return slope, intercept, float(resid @ resid), sxx


def t_quantile(p: float, dof: int) -> float:
    """The p-quantile of Student's t with ``dof`` degrees of freedom."""
    from scipy.special import stdtrit  # scipy.stats would add ~0.8 s to every profile run

    return float(stdtrit(dof, p))


def _spread(
    ly: np.ndarray, slope: float, sse: float, sxx: float
) -> tuple[float | None, float | None, tuple[float, float] | None]:
    """(R², standard error of the slope, its 95% interval); all None for 2 points."""
    n = ly.size
    if n < 3:
        return None, None, None
    sst = float(((ly - ly.mean()) ** 2).sum())
    r2 = 1.0 - sse / sst if sst > 0 else 1.0
    se = math.sqrt(sse / (n - 2) / sxx)
    half = t_quantile(0.5 + LEVEL / 2, n - 2) * se
    return r2, se, (slope - half, slope + half)


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
    exponent, intercept, sse, sxx = _line(lx, ly)
    r2, se, ci = _spread(ly, exponent, sse, sxx)
    exponent_high = None
    if distinct.size >= 3:
        cut = distinct[-max(2, math.ceil(distinct.size / 2))]
        high = xs >= cut
        exponent_high = _line(lx[high], ly[high])[0]
    return PowerLawFit(
        exponent=exponent,
        prefactor=math.exp(intercept),
        n_points=int(xs.size),
        x_used=sorted(xs.tolist()),
        exponent_high=exponent_high,
        r2=r2,
        exponent_se=se,
        exponent_ci95=ci,
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


def _plain(values: Iterable[float]) -> list[float | int]:
    """Whole numbers as ints, for lists a reader scans (token counts)."""
    return [int(v) if float(v).is_integer() else v for v in values]


def flag_for(metric: str) -> str | None:
    """The record flag whose points a fit of ``metric`` leaves out (timing metrics only)."""
    return TIMING_FLAG if metric.startswith(TIMED) else None


@dataclass
class _Points:
    """A group's points for one metric: those fitted and the x of those left out."""

    used: list[tuple[float, float]]
    excluded: list[float]
    flag: str | None

    @classmethod
    def of(cls, members: Sequence[dict[str, Any]], x: str, metric: str) -> _Points:
        flag = flag_for(metric)
        used, excluded = [], []
        for rec in members:
            a, b = _number(rec.get(x)), _number(rec.get(metric))
            if a is None or b is None:
                continue
            flagged = flag is not None and not is_missing(rec.get(flag)) and bool(rec.get(flag))
            if flagged:
                excluded.append(a)
            else:
                used.append((a, b))
        return cls(used, sorted(excluded), flag)

    def note(self, x: str) -> str | None:
        if not self.excluded:
            return None
        k = len(self.excluded)
        listed = ", ".join(str(v) for v in _plain(self.excluded))
        return f"left out {k} point{'s' * (k > 1)} flagged {self.flag} ({x} {listed})"


def _fit_row(members: Sequence[dict[str, Any]], x: str, metric: str) -> dict[str, Any] | None:
    """The fit of ``metric`` against ``x`` over one group, as a record; None when the group
    never had 2 distinct x. A group left with fewer than 2 after exclusions gets a row without
    an exponent, saying why."""
    points = _Points.of(members, x, metric)
    row = {
        "x": x,
        "metric": metric,
        "excluded_points": len(points.excluded),
        "x_excluded": _plain(points.excluded),
    }
    try:
        fit = fit_power_law([a for a, _ in points.used], [b for _, b in points.used])
    except ValueError:  # fewer than 2 distinct positive x
        if len({a for a, _ in points.used} | set(points.excluded)) < 2 or not points.excluded:
            return None
        why = f"{points.note(x)}: fewer than 2 points left"
        return {**row, "quality": "no fit", "n_points": len(points.used), "note": why}
    quality, why = fit.quality()
    low, high = fit.exponent_ci95 or (None, None)
    notes = [n for n in (why, points.note(x)) if n]
    return {
        **row,
        "exponent": fit.exponent,
        "exponent_se": fit.exponent_se,
        "exponent_ci95_low": low,
        "exponent_ci95_high": high,
        "exponent_high": fit.exponent_high,
        "prefactor": fit.prefactor,
        "r2": fit.r2,
        "quality": quality,
        "n_points": fit.n_points,
        "x_min": fit.x_min,
        "x_max": fit.x_max,
        "x_used": _plain(fit.x_used),
        "note": "; ".join(notes) or None,
    }


def fit_scaling(
    records: Sequence[dict[str, Any]],
    x: str = "tokens",
    ys: Sequence[str] = ("macs", "latency_median_ms", "memory_peak_over_baseline_bytes"),
    group_by: Sequence[str] = ("model", "batch_size"),
) -> list[dict[str, Any]]:
    """One power-law fit per group and metric, as flat records.

    Records are grouped by the ``group_by`` fields; within a group, a metric is fitted over the
    records where both ``x`` and the metric are numbers, leaving out timing points flagged
    ``latency_noisy``. Groups or metrics with fewer than 2 distinct x values are skipped, unless
    left out points made them so (then the row has no exponent and its ``note`` says why).
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(tuple(rec.get(k) for k in group_by), []).append(rec)
    rows = []
    for key, members in groups.items():
        for metric in ys:
            row = _fit_row(members, x, metric)
            if row is not None:
                rows.append({**dict(zip(group_by, key, strict=True)), **row})
    return rows
