"""Timing rounds: one point measured several times across a sweep, and what the rounds say.

A sweep measures every point once, then every point again, and so on (``rounds`` times), so
load that comes and goes lands in different rounds of one point rather than on the whole of it.
A point's figure is the median of its rounds' medians; the rounds' spread and whether they
disagree feed its noisy flag beside the per-call spread. Rounds disagree when their 95%
intervals of the median, each widened by ``rel_precision`` of the point's median, do not all
overlap: a gap the precision asked for cannot explain. See docs/methodology/timing.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vitbench.measure.timing import TimingStats, median_ci_ranks, summarize

#: re-measures at most for a point whose rounds disagree, after its planned rounds
EXTRA_ROUNDS = 2


def median_interval(stats: TimingStats) -> tuple[float, float]:
    """The 95% interval of a round's median (seconds); its whole range below 6 samples."""
    xs = sorted(stats.samples_s)
    ranks = median_ci_ranks(len(xs))
    if ranks is None:
        return xs[0], xs[-1]
    return xs[ranks[0]], xs[ranks[1]]


@dataclass
class RoundStats:
    """A point's rounds and what they say together; times in seconds."""

    rounds: list[TimingStats]
    pooled: TimingStats  # every sample of every round: percentiles, IQR, CV
    median_s: float  # the median of the rounds' medians: the point's figure
    spread: float  # (largest - smallest round median) / median_s
    gap: float  # how far the rounds' intervals fail to overlap, over median_s (<= 0: overlap)
    disagree: bool  # gap beyond rel_precision
    noisy: bool  # a noisy round, a spread beyond the noise limit, or disagreeing rounds
    extra_rounds: int = 0  # re-measures after the planned rounds

    def as_record(self, prefix: str = "latency_") -> dict[str, Any]:
        """The pooled statistics with the point's figure and the rounds' own fields."""
        rec = self.pooled.as_record(prefix)
        medians = [r.median_s * 1e3 for r in self.rounds]
        rec.update(
            {
                "first_call_ms": self.rounds[0].first_call_s * 1e3,
                f"{prefix}median_ms": self.median_s * 1e3,
                f"{prefix}noisy": self.noisy,
                f"{prefix}rounds": len(self.rounds),
                f"{prefix}round_medians_ms": medians,
                f"{prefix}round_spread": self.spread,
                f"{prefix}rounds_disagree": self.disagree,
                f"{prefix}extra_rounds": self.extra_rounds,
            }
        )
        return rec


def combine_rounds(
    rounds: Sequence[TimingStats], *, rel_precision: float, noise_cv: float, extra_rounds: int = 0
) -> RoundStats:
    """What ``rounds`` of one point say together (see the module's doc)."""
    if not rounds:
        raise ValueError("no timing rounds")
    medians = np.array([r.median_s for r in rounds])
    median = float(np.median(medians))
    lows, highs = zip(*(median_interval(r) for r in rounds), strict=True)
    gap = (max(lows) - min(highs)) / median if median > 0 else math.inf
    spread = float(medians.max() - medians.min()) / median if median > 0 else math.inf
    disagree = gap > rel_precision
    samples = [s for r in rounds for s in r.samples_s]
    pooled = summarize(
        samples,
        rounds[0].first_call_s,
        warmup_runs=rounds[0].warmup_runs,
        stop_reason=rounds[-1].stop_reason,
        noise_cv=noise_cv,
        timer=rounds[0].timer,
    )
    noisy = any(r.noisy for r in rounds) or spread > noise_cv or disagree
    return RoundStats(
        list(rounds), pooled, median, spread, float(gap), disagree, noisy, extra_rounds
    )
