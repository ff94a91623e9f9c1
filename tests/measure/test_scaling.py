"""Power-law fits against closed forms, scipy's regression and simulated coverage, and the
per-group fit table with its exclusions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from vitbench.measure.scaling import fit_power_law, fit_scaling, t_quantile

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


def test_two_points_are_an_exact_line_with_no_r2():
    fit = fit_power_law([10.0, 40.0], [3.0, 48.0])  # 48 / 3 = (40 / 10)^2
    assert fit.exponent == pytest.approx(2.0, abs=1e-12)
    assert fit.prefactor == pytest.approx(3.0 / 10.0**2, rel=1e-12)
    assert (fit.r2, fit.exponent_se, fit.exponent_ci95) == (None, None, None)
    assert fit.quality()[0] == "exact" and fit.x_used == [10.0, 40.0]


@pytest.mark.parametrize(("p", "dof"), [(0.975, 1), (0.975, 2), (0.9, 2), (0.6, 1)])
def test_t_quantile_against_closed_forms(p, dof):
    # Student's t with 1 dof is Cauchy; with 2 its CDF is 1/2 + t / (2 sqrt(2 + t^2))
    closed = math.tan(math.pi * (p - 0.5)) if dof == 1 else (2 * p - 1) / math.sqrt(2 * p * (1 - p))
    assert t_quantile(p, dof) == pytest.approx(closed, rel=1e-10)


def test_standard_error_and_r2_match_independent_computations():
    rng = np.random.default_rng(7)
    x = np.array([17.0, 37.0, 65.0, 101.0, 145.0, 197.0])
    y = 0.3 * x**1.2 * np.exp(rng.normal(0, 0.05, x.size))
    fit = fit_power_law(x, y)
    ref = stats.linregress(np.log(x), np.log(y))
    assert fit.exponent == pytest.approx(ref.slope, rel=1e-12)
    assert fit.exponent_se == pytest.approx(ref.stderr, rel=1e-10)
    assert fit.r2 == pytest.approx(ref.rvalue**2, rel=1e-12)
    _, cov = np.polyfit(np.log(x), np.log(y), 1, cov=True)  # scaled by SSE / (n - 2)
    assert fit.exponent_se == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-10)
    half = stats.t.ppf(0.975, x.size - 2) * ref.stderr
    assert fit.exponent_ci95 == pytest.approx((ref.slope - half, ref.slope + half), rel=1e-10)


@pytest.mark.parametrize("n", [3, 6])
def test_interval_covers_the_true_exponent_at_the_stated_rate(n):
    """2000 noisy power laws: the 95% interval holds the true exponent in ~95% of them.

    With 3 points the t quantile (12.7) matters: a normal one (1.96) would cover ~70%.
    """
    trials, true = 2000, 1.3
    x = np.geomspace(16, 1024, n)
    covered = 0
    for seed in range(trials):
        y = 2.0 * x**true * np.exp(np.random.default_rng(seed).normal(0, 0.1, n))
        low, high = fit_power_law(x, y).exponent_ci95
        covered += low <= true <= high
    tolerance = 4 * math.sqrt(0.95 * 0.05 / trials)  # 4 binomial standard deviations
    assert abs(covered / trials - 0.95) < tolerance


def test_quality_verdicts():
    x = np.geomspace(16, 1024, 5)
    assert fit_power_law(x, x**1.5).quality() == ("good", None)
    wobble = np.exp(np.array([0.0, 0.3, -0.3, 0.3, 0.0]))  # R² high, exponent loose
    verdict, why = fit_power_law(x, x**1.5 * wobble).quality()
    assert verdict == "poor" and "interval" in why and "R²" not in why
    flat = np.exp(np.array([0.0, 0.1, -0.1, 0.1, 0.0]))  # no trend: R² near 0
    verdict, why = fit_power_law(x, 5 * flat).quality()
    assert verdict == "poor" and "R²" in why


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


def test_fit_rows_carry_their_points_interval_and_verdict():
    records = [_rec("vit", 1, t, macs=3 * t**2) for t in (16, 64, 256)]
    records += [_rec("vit", 8, t, macs=7 * t) for t in (16, 64)]
    got = {r["batch_size"]: r for r in fit_scaling(records, ys=("macs",))}
    three, two = got[1], got[8]
    assert three["quality"] == "good" and three["r2"] == pytest.approx(1.0)
    assert three["exponent_ci95_low"] == pytest.approx(2.0) == three["exponent_ci95_high"]
    assert three["x_used"] == [16, 64, 256] and three["n_points"] == 3 and three["note"] is None
    assert two["quality"] == "exact" and two["r2"] is None and two["exponent_se"] is None
    assert two["exponent_ci95_low"] is None and "exact line" in two["note"]
    assert (two["excluded_points"], two["x_excluded"]) == (0, [])


def test_noisy_timing_is_left_out_of_timing_fits_only():
    records = [
        _rec("vit", 1, t, macs=3 * t**2, latency_median_ms=0.5 * t, latency_noisy=False)
        for t in (16, 64, 256)
    ]
    records.append(
        _rec("vit", 1, 1024, macs=3 * 1024**2, latency_median_ms=1e6, latency_noisy=True)
    )
    got = {r["metric"]: r for r in fit_scaling(records)}
    lat = got["latency_median_ms"]
    assert lat["exponent"] == pytest.approx(1.0) and lat["n_points"] == 3  # 1e6 ms ignored
    assert (lat["excluded_points"], lat["x_excluded"], lat["x_max"]) == (1, [1024], 256)
    assert "left out 1 point flagged latency_noisy (tokens 1024)" in lat["note"]
    macs = got["macs"]  # counted, not timed: the flag does not apply
    assert macs["n_points"] == 4 and macs["excluded_points"] == 0 and macs["x_max"] == 1024
    throughput = fit_scaling(records, ys=("throughput_sps", "mfu"))
    assert throughput == []  # the records carry neither


def test_a_sweep_left_with_one_point_says_so_without_an_exponent():
    records = [
        _rec("vit", 1, 16, latency_median_ms=2.0, latency_noisy=False),
        _rec("vit", 1, 64, latency_median_ms=9.0, latency_noisy=True),
        _rec("vit", 1, 256, latency_median_ms=50.0, latency_noisy=True),
        _rec("deit", 1, 16, latency_median_ms=2.0, latency_noisy=True),  # never a sweep
    ]
    (row,) = fit_scaling(records, ys=("latency_median_ms",))
    assert row["model"] == "vit" and row["quality"] == "no fit" and "exponent" not in row
    assert (row["n_points"], row["excluded_points"], row["x_excluded"]) == (1, 2, [64, 256])
    assert row["note"].endswith("fewer than 2 points left")
