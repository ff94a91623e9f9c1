"""Timing: statistics against numpy and the binomial law, and the loop's stopping rules."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from vitbench.measure.timing import (
    median_ci_ranks,
    median_rel_ci,
    set_threads,
    summarize,
    synchronizer,
    time_callable,
)

SAMPLES = [0.012, 0.010, 0.011, 0.013, 0.010, 0.030, 0.011, 0.012, 0.010, 0.014]


def test_summarize_matches_numpy():
    s = summarize(SAMPLES, 0.5, warmup_runs=2, stop_reason="budget")
    xs = np.array(SAMPLES)
    assert s.n == 10 and s.first_call_s == 0.5 and s.warmup_runs == 2
    assert s.median_s == pytest.approx(np.median(xs))
    assert s.mean_s == pytest.approx(xs.mean())
    assert s.p90_s == pytest.approx(np.percentile(xs, 90))
    assert s.p99_s == pytest.approx(np.percentile(xs, 99))
    assert s.iqr_s == pytest.approx(np.percentile(xs, 75) - np.percentile(xs, 25))
    assert (s.min_s, s.max_s) == (0.010, 0.030)
    assert s.cv == pytest.approx(xs.std(ddof=1) / xs.mean())
    # 95% CI of the median of 10 samples: 2nd and 9th order statistics
    ordered = np.sort(xs)
    assert s.rel_ci == pytest.approx((ordered[8] - ordered[1]) / 2 / np.median(xs))
    assert s.samples_s == SAMPLES
    assert s.noisy  # one 30 ms outlier: CV about 0.4


def test_summarize_quiet_and_single_sample():
    quiet = summarize([1.0, 1.01, 0.99, 1.0, 1.0, 1.02], 2.0)
    assert not quiet.noisy and quiet.cv < 0.1
    one = summarize([0.25], 1.0)
    assert one.median_s == one.p99_s == 0.25 and one.cv == 0.0
    assert math.isinf(one.rel_ci)  # no 95% interval from one sample
    with pytest.raises(ValueError):
        summarize([], 1.0)


@pytest.mark.parametrize(
    ("n", "ranks"),
    [(1, None), (5, None), (6, (0, 5)), (10, (1, 8)), (100, (39, 60))],  # standard tables
)
def test_median_ci_ranks(n, ranks):
    assert median_ci_ranks(n) == ranks


@pytest.mark.parametrize("n", [6, 7, 20, 51, 300])
def test_median_ci_coverage_is_the_tightest_at_95_percent(n):
    def coverage(lo: int) -> float:  # P(x_(lo) <= median <= x_(n-1-lo)), 0-based ranks
        tail = sum(math.comb(n, i) for i in range(lo + 1)) / 2**n
        return 1 - 2 * tail

    lo, hi = median_ci_ranks(n)
    assert hi == n - 1 - lo
    assert coverage(lo) >= 0.95 > coverage(lo + 1)


def test_median_ci_is_scipys_order_statistic_interval():
    """scipy's quantile_test gives the exact binomial CI of a quantile: the same interval."""
    stats = pytest.importorskip("scipy.stats")
    if not hasattr(stats, "quantile_test"):
        pytest.skip("scipy.stats.quantile_test needs scipy >= 1.12")
    rng = np.random.default_rng(0)
    for n in [*range(1, 80), 100, 257, 1000]:
        xs = rng.lognormal(mean=-4.0, sigma=0.5, size=n)  # skewed, like per-call latencies
        ci = stats.quantile_test(xs, p=0.5).confidence_interval(confidence_level=0.95)
        ranks = median_ci_ranks(n)
        if ranks is None:
            assert not (np.isfinite(ci.low) or np.isfinite(ci.high)), n
            assert math.isinf(median_rel_ci(xs))
            continue
        ordered = np.sort(xs)
        assert (ordered[ranks[0]], ordered[ranks[1]]) == (ci.low, ci.high), n
        rel = (ci.high - ci.low) / 2 / np.median(xs)
        assert median_rel_ci(xs) == pytest.approx(rel, rel=1e-12), n


@pytest.mark.parametrize("n", [6, 10, 31, 100])
def test_median_ci_covers_the_true_median_of_skewed_samples(n):
    """Simulated coverage: exponential samples (median ln 2), 20 000 sets of n each."""
    trials = 20_000
    xs = np.sort(np.random.default_rng(n).exponential(size=(trials, n)), axis=1)
    lo, hi = median_ci_ranks(n)
    covered = ((xs[:, lo] <= math.log(2)) & (math.log(2) <= xs[:, hi])).mean()
    exact = 1 - 2 * sum(math.comb(n, i) for i in range(lo + 1)) / 2**n
    se = math.sqrt(exact * (1 - exact) / trials)
    assert covered == pytest.approx(exact, abs=4 * se)
    assert covered >= 0.95 - 4 * se


def test_as_record_fields_in_ms():
    rec = summarize(SAMPLES, 0.5, stop_reason="precision").as_record()
    assert rec["first_call_ms"] == pytest.approx(500.0)
    assert rec["latency_median_ms"] == pytest.approx(1e3 * np.median(SAMPLES))
    for key in ("p90", "p99", "iqr", "mean", "min", "max", "std"):
        assert f"latency_{key}_ms" in rec
    assert rec["latency_n"] == 10 and rec["latency_stop_reason"] == "precision"
    assert rec["latency_noisy"] is True and rec["latency_timer"] == "perf_counter"
    assert summarize([0.1], 0.1).as_record()["latency_rel_ci"] is None  # inf is not stored


def test_sleep_median_close_to_sleep_time():
    stats = time_callable(lambda: time.sleep(0.005), warmup=1, budget_s=0.3, rel_precision=0.05)
    assert 0.005 <= stats.median_s < 0.05  # generous: the machine is shared
    assert stats.min_s >= 0.005


def test_first_call_timed_apart_and_warmup_untimed():
    calls = []

    def fn():
        calls.append(1)
        time.sleep(0.1 if len(calls) == 1 else 0.002)

    stats = time_callable(fn, warmup=2, min_runs=5, max_runs=5, budget_s=10)
    assert stats.first_call_s >= 0.1
    assert stats.median_s < 0.05 and stats.max_s < 0.1
    assert len(calls) == 1 + 2 + stats.n


def test_stop_on_budget_after_min_runs():
    stats = time_callable(
        lambda: time.sleep(0.002), warmup=0, min_runs=4, budget_s=0.0, rel_precision=0.0
    )
    assert stats.stop_reason == "budget" and stats.n == 4
    stats = time_callable(
        lambda: time.sleep(0.002), warmup=0, min_runs=3, budget_s=0.05, rel_precision=0.0
    )
    assert stats.stop_reason == "budget" and 3 <= stats.n < 1000


def test_stop_on_max_runs_and_on_precision():
    stats = time_callable(lambda: None, warmup=0, min_runs=7, max_runs=7, rel_precision=0.0)
    assert stats.stop_reason == "max_runs" and stats.n == 7
    stats = time_callable(lambda: time.sleep(0.002), min_runs=6, budget_s=30, rel_precision=5.0)
    assert stats.stop_reason == "precision" and stats.n == 6  # first n with a 95% interval
    assert stats.rel_ci <= 5.0


def test_bad_run_counts():
    with pytest.raises(ValueError):
        time_callable(lambda: None, min_runs=5, max_runs=2)


def test_set_threads_changes_torch_and_none_leaves_it_alone():
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    try:
        assert set_threads(other) == other
        assert torch.get_num_threads() == other  # torch itself now uses ``other`` threads
        assert set_threads(None) == other and torch.get_num_threads() == other
        with pytest.raises(ValueError):
            set_threads(0)
        assert torch.get_num_threads() == other  # a refused count changes nothing
    finally:
        assert set_threads(before) == before
    assert torch.get_num_threads() == before


def test_set_threads_sets_inter_op_threads_in_a_fresh_process():
    # torch allows set_num_interop_threads once, before inter-op work: only a new process shows it
    # 3, not torch's default (the core count) on most boxes; nothing is queried before the set
    code = (
        "import torch; from vitbench.measure.timing import set_threads;"
        "print(set_threads(3), torch.get_num_threads(), torch.get_num_interop_threads())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3", "3", "3"]


def test_synchronizer_waits_for_cuda_only(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    synchronizer("cpu")()
    assert calls == []  # CPU ops have finished when they return: nothing to wait for
    synchronizer("cuda:1")()
    assert calls == [torch.device("cuda:1")]  # the device it was made for, not the current one


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_events_and_fallback():
    a = torch.randn(1024, 1024, device="cuda")
    fn = lambda: a @ a  # noqa: E731
    events = time_callable(fn, device="cuda", budget_s=0.2)
    clock = time_callable(fn, device="cuda", budget_s=0.2, use_cuda_events=False)
    assert events.timer == "cuda-events" and clock.timer == "perf_counter"
    assert 0 < events.median_s < 1 and 0 < clock.median_s < 1
    # a kernel that spins ~10 ms: events see GPU time, not the launch's few microseconds
    spin = time_callable(lambda: torch.cuda._sleep(10_000_000), device="cuda", budget_s=0.3)
    assert spin.median_s > 1e-3
