"""Per-call latency: a first call on its own, warm-up, then timed samples until precise enough.

The loop keeps every sample (for p90/p99, which per-block means such as
``torch.utils.benchmark.Timer.blocked_autorange`` hide) and stops when the 95% confidence
interval of the median is narrow enough, when the time budget is spent, or at ``max_runs``.
See docs/methodology/timing.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from vitbench.measure.options import ProfileOptions

#: the stopping rule's and the noise flag's defaults: those of ``vitbench profile``
_DEFAULTS = ProfileOptions()

#: coverage of the confidence interval of the median
CONFIDENCE = 0.95


@dataclass
class TimingStats:
    """Summary of per-call timings; all times in seconds."""

    first_call_s: float  # the very first call, timed on its own (lazy init, compile, autotune)
    warmup_runs: int  # untimed calls after the first one
    n: int  # timed samples
    samples_s: list[float]
    median_s: float
    mean_s: float
    p90_s: float
    p99_s: float
    iqr_s: float  # p75 - p25
    min_s: float
    max_s: float
    std_s: float  # sample standard deviation (ddof=1); 0 for one sample
    cv: float  # std / mean
    rel_ci: float  # half the width of the 95% CI of the median, over the median; inf when n < 6
    noisy: bool  # cv > noise threshold
    stop_reason: str  # "precision" | "budget" | "max_runs"
    timer: str = "perf_counter"  # "perf_counter" | "cuda-events"

    def as_record(self, prefix: str = "latency_") -> dict[str, Any]:
        """Flat fields for a results row: times in ms, samples left out, inf CI as None."""
        ms = {
            f"{prefix}{k}_ms": getattr(self, f"{k}_s") * 1e3
            for k in ("median", "mean", "p90", "p99", "iqr", "min", "max", "std")
        }
        return {
            "first_call_ms": self.first_call_s * 1e3,
            **ms,
            f"{prefix}cv": self.cv,
            f"{prefix}rel_ci": self.rel_ci if math.isfinite(self.rel_ci) else None,
            f"{prefix}n": self.n,
            f"{prefix}warmup_runs": self.warmup_runs,
            f"{prefix}noisy": self.noisy,
            f"{prefix}stop_reason": self.stop_reason,
            f"{prefix}timer": self.timer,
        }


@lru_cache(maxsize=4096)
def median_ci_ranks(n: int, confidence: float = CONFIDENCE) -> tuple[int, int] | None:
    """0-based ranks (lo, hi) of the distribution-free CI of the median of ``n`` samples.

    With x_(0) <= ... <= x_(n-1) the sorted samples and B ~ Binomial(n, 1/2) the number of them
    below the true median, [x_(k), x_(n-1-k)] misses the median with probability 2 P(B <= k).
    The ranks are lo = k, hi = n - 1 - k for the largest k with 1 - 2 P(B <= k) >= ``confidence``:
    the narrowest such interval, with coverage at least ``confidence``. None when even
    [x_(0), x_(n-1)] falls short (n < 6 at 95%: 1 - 2 / 2**5 < 0.95).
    """
    alpha = (1.0 - confidence) / 2
    log_half_n = n * math.log(0.5)
    # cdf is P(B < j); the loop stops at the first j with P(B <= j) > alpha, so k = j - 1 is the
    # largest k with P(B <= k) <= alpha and the interval is [x_(j-1), x_(n-j)], 0-based
    cdf, j = 0.0, 0
    while j <= n // 2:
        pmf = math.exp(
            math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) + log_half_n
        )
        if cdf + pmf > alpha:
            break
        cdf += pmf
        j += 1
    if j == 0:
        return None
    return j - 1, n - j


def median_rel_ci(samples: Sequence[float]) -> float:
    """Half the width of the 95% order-statistic CI of the median, over the median.

    (x_(hi) - x_(lo)) / 2 / median with (lo, hi) from :func:`median_ci_ranks`; the interval need
    not be centred on the median. inf below 6 samples or when the median is not positive.
    """
    ranks = median_ci_ranks(len(samples))
    if ranks is None:
        return math.inf
    xs = np.sort(np.asarray(samples, dtype=float))
    median = float(np.median(xs))
    if median <= 0:
        return math.inf
    lo, hi = ranks
    return float(xs[hi] - xs[lo]) / 2 / median


def summarize(
    samples: Sequence[float],
    first_call_s: float,
    *,
    warmup_runs: int = 0,
    stop_reason: str = "max_runs",
    noise_cv: float = _DEFAULTS.noise_cv,
    timer: str = "perf_counter",
) -> TimingStats:
    """Statistics of per-call ``samples`` (seconds); a pure function of its inputs."""
    if len(samples) == 0:
        raise ValueError("no timing samples")
    xs = np.asarray(samples, dtype=float)
    mean = float(xs.mean())
    std = float(xs.std(ddof=1)) if len(xs) > 1 else 0.0
    p25, p50, p75, p90, p99 = np.percentile(xs, [25, 50, 75, 90, 99])  # linear interpolation
    cv = std / mean if mean > 0 else math.inf
    return TimingStats(
        first_call_s=float(first_call_s),
        warmup_runs=warmup_runs,
        n=len(xs),
        samples_s=[float(x) for x in xs],
        median_s=float(p50),
        mean_s=mean,
        p90_s=float(p90),
        p99_s=float(p99),
        iqr_s=float(p75 - p25),
        min_s=float(xs.min()),
        max_s=float(xs.max()),
        std_s=std,
        cv=cv,
        rel_ci=median_rel_ci(xs),
        noisy=cv > noise_cv,
        stop_reason=stop_reason,
        timer=timer,
    )


def synchronizer(device: torch.device | str) -> Callable[[], None]:
    """A function that waits for the device's queued work: CUDA synchronize, a no-op on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _perf_counter_timer(fn: Callable[[], object], sync: Callable[[], None]) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def _cuda_event_timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """Times one call on the current stream with CUDA events (start/end record, synchronize)."""
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def timed(fn: Callable[[], object]) -> float:
        with torch.cuda.device(device):
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3  # ms -> s

    return timed


def time_callable(
    fn: Callable[[], object],
    *,
    device: torch.device | str = "cpu",
    warmup: int = _DEFAULTS.warmup,
    min_runs: int = _DEFAULTS.min_runs,
    max_runs: int = _DEFAULTS.max_runs,
    budget_s: float = _DEFAULTS.budget_s,
    rel_precision: float = _DEFAULTS.rel_precision,
    noise_cv: float = _DEFAULTS.noise_cv,
    use_cuda_events: bool = True,
) -> TimingStats:
    """Time ``fn()`` per call on ``device``.

    The first call is timed on its own; ``warmup`` more calls run untimed; then one sample is
    taken at a time until ``max_runs`` samples are taken, or, from ``min_runs`` samples on,
    until :func:`median_rel_ci` (half the width of the 95% CI of the median, over the median)
    is at most ``rel_precision``, or ``budget_s`` seconds of wall time have passed since the
    first timed sample began (checked in that order after each sample).
    """
    if min_runs < 1 or max_runs < min_runs:
        raise ValueError(f"need 1 <= min_runs <= max_runs, got {min_runs}, {max_runs}")
    device = torch.device(device)
    sync = synchronizer(device)
    first_call_s = _perf_counter_timer(fn, sync)
    for _ in range(warmup):
        fn()
    sync()
    if device.type == "cuda" and use_cuda_events:
        timer, timer_name = _cuda_event_timer(device), "cuda-events"
    else:
        timer, timer_name = (lambda f: _perf_counter_timer(f, sync)), "perf_counter"
    samples: list[float] = []
    started = time.perf_counter()
    while True:
        samples.append(timer(fn))
        n = len(samples)
        if n >= max_runs:
            stop = "max_runs"
            break
        if n < min_runs:
            continue
        if median_rel_ci(samples) <= rel_precision:
            stop = "precision"
            break
        if time.perf_counter() - started >= budget_s:
            stop = "budget"
            break
    return summarize(
        samples,
        first_call_s,
        warmup_runs=warmup,
        stop_reason=stop,
        noise_cv=noise_cv,
        timer=timer_name,
    )


def set_threads(n: int | None) -> int:
    """Apply ``n`` CPU threads (intra-op, and inter-op while torch still allows it).

    Returns the intra-op thread count in force. ``None`` leaves torch's setting alone. Set it
    explicitly: ``torch.utils.benchmark.Timer`` defaults to one thread, torch itself to about
    the number of cores.
    """
    if n is not None:
        if n < 1:
            raise ValueError(f"threads must be at least 1, got {n}")
        torch.set_num_threads(n)
        try:
            torch.set_num_interop_threads(n)
        except RuntimeError:
            pass  # only settable once, before any inter-op work has started
    return torch.get_num_threads()
