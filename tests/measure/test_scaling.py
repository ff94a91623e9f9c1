"""Power-law fits against closed forms, and the per-group fit table."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vitbench.measure.scaling import fit_power_law, fit_scaling

TOKENS = np.array([16.0, 64.0, 256.0, 1024.0])


def test_pure_power_law_is_exact():
    fit = fit_power_law(TOKENS, 3 * TOKENS**2)
    assert fit.exponent == pytest.approx(2.0, abs=1e-12)
    assert fit.prefactor == pytest.approx(3.0, rel=1e-12)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.exponent_high == pytest.approx(2.0, abs=1e-12)
    assert (fit.n_points, fit.x_min, fit.x_max) == (4, 16.0, 1024.0)
    assert fit_power_law(TOKENS, 5 * TOKENS).exponent == pytest.approx(1.0, abs=1e-12)


def test_linear_plus_quadratic_shows_the_quadratic_term_at_large_sizes():
    a, b = 768.0, 1.0  # per-token cost ~ width, attention ~ tokens^2: they cross at 768
    y = a * TOKENS + b * TOKENS**2
    fit = fit_power_law(TOKENS, y)
    assert 1.0 < fit.exponent < fit.exponent_high < 2.0
    # 4 distinct sizes: exponent_high is the slope through the last two points
    slope = math.log(y[-1] / y[-2]) / math.log(TOKENS[-1] / TOKENS[-2])
    assert fit.exponent_high == pytest.approx(slope)
    assert fit.r2 < 1.0


def test_bad_points_dropped_and_too_few_rejected():
    fit = fit_power_law([0, 2, 4, -1, 8], [5, 2, 4, 3, float("nan")])
    assert fit.n_points == 2 and fit.exponent == pytest.approx(1.0) and fit.exponent_high is None
    with pytest.raises(ValueError):
        fit_power_law([5, 5, 5], [1, 2, 3])
    with pytest.raises(ValueError):
        fit_power_law([1, 2], [1, 2, 3])


def _rec(model, batch, tokens, **metrics):
    return {"model": model, "batch_size": batch, "tokens": tokens, **metrics}


def test_fit_scaling_one_row_per_group_and_metric():
    records = [_rec("vit", 1, t, macs=3 * t**2, latency_median_ms=0.5 * t) for t in (16, 64, 256)]
    records += [_rec("vit", 8, t, macs=7 * t, latency_median_ms=None) for t in (16, 64)]
    records += [_rec("swin", 1, 49, macs=10.0)]  # one size only: no fit
    records += [
        _rec("vit", 8, 256, macs=float("nan"), memory_peak_over_baseline_bytes=1e6)
    ]  # NaN skipped
    rows = fit_scaling(records)
    got = {(r["model"], r["batch_size"], r["metric"]): r for r in rows}
    assert set(got) == {("vit", 1, "macs"), ("vit", 1, "latency_median_ms"), ("vit", 8, "macs")}
    assert got[("vit", 1, "macs")]["exponent"] == pytest.approx(2.0)
    assert got[("vit", 1, "latency_median_ms")]["exponent"] == pytest.approx(1.0)
    row = got[("vit", 8, "macs")]
    assert row["exponent"] == pytest.approx(1.0) and row["n_points"] == 2
    assert row["exponent_high"] is None and (row["x_min"], row["x_max"]) == (16, 64)
    assert {"x", "prefactor", "r2"} <= set(row) and row["x"] == "tokens"


def test_fit_scaling_custom_axes():
    records = [{"family": "vit", "img_size": s, "macs": s**4} for s in (112, 224, 448)]
    rows = fit_scaling(records, x="img_size", ys=("macs",), group_by=("family",))
    assert len(rows) == 1 and rows[0]["family"] == "vit"
    assert rows[0]["exponent"] == pytest.approx(4.0)
