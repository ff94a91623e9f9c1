"""How stored power-law fits (the ``profile_fit`` table) read in the report.

Only a fit rated ``good`` is drawn as a law. An exact line through two points, a poor fit and a
sweep left without a fit are shown as their points with a note saying so; fits stored before
vitbench rated them are shown as their points, without a note. The rating is
`vitbench.measure.scaling`'s (docs/methodology/scaling.md); this module reads it and never
imports the measuring code.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from vitbench.missing import is_missing
from vitbench.report.tables import fmt, row_mode

Fit = dict[str, Any]


def by_key(fits: pd.DataFrame) -> dict[tuple, Fit]:
    """(run_id, model, batch_size, mode, metric) -> the stored fit row (fits stored before
    training steps were measured have no mode: they are inference fits)."""
    if fits.empty or not {"run_id", "model", "batch_size", "metric"} <= set(fits.columns):
        return {}
    return {
        (r["run_id"], r["model"], int(r["batch_size"]), row_mode(r), r["metric"]): r
        for r in fits.to_dict("records")
        if not is_missing(r["batch_size"])
    }


def is_law(fit: Fit) -> bool:
    """Whether the fit is rated good, so the report draws it as a power law."""
    values = [fit.get(k) for k in ("exponent", "prefactor")]
    return fit.get("quality") == "good" and not any(is_missing(v) for v in values)


def fitted_range(fit: Fit) -> tuple[float, float] | None:
    """The x range the fit used (a law is drawn over it only)."""
    low, high = fit.get("x_min"), fit.get("x_max")
    return None if is_missing(low) or is_missing(high) else (float(low), float(high))


def left_out(fit: Fit) -> list[float]:
    """The x of the points left out of the fit (stored as a JSON list)."""
    value = fit.get("x_excluded")
    if is_missing(value):
        return []
    return [float(v) for v in (json.loads(value) if isinstance(value, str) else value)]


def _half_width(fit: Fit) -> float | None:
    low, high = fit.get("exponent_ci95_low"), fit.get("exponent_ci95_high")
    return None if is_missing(low) or is_missing(high) else (float(high) - float(low)) / 2


def plot_note(fit: Fit) -> str | None:
    """What a plot writes at the end of a series: k and its 95% interval, or why no law."""
    quality = fit.get("quality")
    if is_law(fit):
        half = _half_width(fit)
        pm = "" if half is None else f"±{half:.2f}"
        return f"k={float(fit['exponent']):.2f}{pm}"
    if quality == "exact":
        return f"exact line, {fmt(fit.get('n_points'), 0)} points"
    return {"poor": "poor fit", "no fit": "no fit"}.get(quality)


def _interval(fit: Fit) -> str | None:
    low, high = fit.get("exponent_ci95_low"), fit.get("exponent_ci95_high")
    return None if is_missing(low) else f"{float(low):.3f} to {float(high):.3f}"


def _r2(fit: Fit) -> str | None:
    if fit.get("quality") == "exact":
        return f"exact line ({fmt(fit.get('n_points'), 0)} points)"
    r2 = fit.get("r2")
    return None if is_missing(r2) else fmt(r2, 4)


def cells(fits: pd.DataFrame) -> pd.DataFrame:
    """``fits`` with the interval and R² as the fit table prints them (``interval``, ``r2``)."""
    rows = fits.to_dict("records")
    return fits.assign(
        interval=[_interval(f) for f in rows],
        r2=[_r2(f) for f in rows],
    )


def remarks(fits: pd.DataFrame, label: Any) -> list[str]:
    """One line per fit with a stored note (not drawn as a law, or points left out), named by
    ``label(fit)``."""
    if "note" not in fits:
        return []
    return [
        f"{label(f)}: {f['note']}" for f in fits.to_dict("records") if not is_missing(f["note"])
    ]
