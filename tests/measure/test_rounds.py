"""Timing rounds: statistics against numpy, a shifted point flagged in a synthetic sweep, and
a point measured while other processes load the CPU flagged in a real one."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vitbench.measure import point as point_mod
from vitbench.measure import sweep as sweep_mod
from vitbench.measure.options import ProfileOptions
from vitbench.measure.profile import profile
from vitbench.measure.rounds import EXTRA_ROUNDS, combine_rounds, median_interval
from vitbench.measure.timing import median_ci_ranks, summarize

TINY = dict(patch_size=8, embed_dim=32, depth=1, num_heads=2)


def _round(rng: np.random.Generator, centre: float, n: int = 60) -> list[float]:
    """Per-call times (s) around ``centre``: 2% multiplicative noise, as a quiet CPU gives."""
    return list(centre * np.exp(0.02 * rng.standard_normal(n)))


def test_round_statistics_equal_numpy_on_the_same_samples() -> None:
    rng = np.random.default_rng(0)
    samples = [_round(rng, c, n) for c, n in ((1e-3, 40), (1.05e-3, 57), (0.98e-3, 23))]
    stats = combine_rounds([summarize(s, 0.01) for s in samples], rel_precision=0.02, noise_cv=0.10)
    medians = [np.median(s) for s in samples]
    pooled = np.concatenate(samples)
    assert stats.median_s == pytest.approx(np.median(medians), rel=1e-12)
    assert stats.spread == pytest.approx((max(medians) - min(medians)) / np.median(medians))
    p25, p75, p99 = np.percentile(pooled, [25, 75, 99])
    rec = stats.as_record()
    assert rec["latency_p99_ms"] == pytest.approx(p99 * 1e3)
    assert rec["latency_iqr_ms"] == pytest.approx((p75 - p25) * 1e3)
    assert rec["latency_cv"] == pytest.approx(pooled.std(ddof=1) / pooled.mean())
    assert rec["latency_n"] == len(pooled) and rec["latency_rounds"] == 3
    assert rec["latency_round_medians_ms"] == pytest.approx([m * 1e3 for m in medians])
    for s, r in zip(samples, stats.rounds, strict=True):  # each round's interval: order stats
        lo, hi = median_ci_ranks(len(s))
        assert median_interval(r) == (sorted(s)[lo], sorted(s)[hi])


def test_rounds_from_one_distribution_agree_and_a_shifted_round_does_not() -> None:
    rng = np.random.default_rng(1)
    same = [summarize(_round(rng, 1e-3), 0.0) for _ in range(3)]
    quiet = combine_rounds(same, rel_precision=0.02, noise_cv=0.10)
    assert not quiet.disagree and not quiet.noisy and quiet.gap <= 0.02
    shifted = [*same[:2], summarize(_round(rng, 1.3e-3), 0.0)]  # a round under load: +30%
    loud = combine_rounds(shifted, rel_precision=0.02, noise_cv=0.10)
    assert loud.disagree and loud.noisy
    assert loud.median_s == pytest.approx(np.median([r.median_s for r in shifted]))
    # the per-call spread inside each round is small: only the rounds show the load
    assert not any(r.noisy for r in shifted)


def test_one_round_cannot_disagree_with_itself() -> None:
    rng = np.random.default_rng(2)
    one = combine_rounds([summarize(_round(rng, 1e-3), 0.0)], rel_precision=0.0, noise_cv=0.1)
    assert not one.disagree and one.spread == 0.0 and one.gap < 0


@pytest.fixture
def synthetic_timing(monkeypatch):
    """Replace each timing round by synthetic samples: 1 ms, or 2 ms for (batch 2, round 2)."""
    rng = np.random.default_rng(3)
    calls: dict[int, int] = {}

    def fake_round(forward, opts):
        batch = forward.batch_size
        calls[batch] = calls.get(batch, 0) + 1
        centre = 2e-3 if (batch, calls[batch]) == (2, 2) else 1e-3
        return summarize(_round(rng, centre), 0.0, noise_cv=opts.noise_cv)

    real_forward = point_mod.forward_pass

    def tagged_forward(model, spec, batch_size, opts):
        forward = real_forward(model, spec, batch_size, opts)
        forward.batch_size = batch_size
        return forward

    monkeypatch.setattr(sweep_mod, "time_round", fake_round)
    monkeypatch.setattr(point_mod, "time_round", fake_round)
    monkeypatch.setattr(point_mod, "forward_pass", tagged_forward)
    return calls


def test_a_synthetic_sweep_flags_the_shifted_point_and_measures_it_again(synthetic_timing):
    opts = ProfileOptions(
        metrics=frozenset({"params", "latency"}),
        batch_sizes=(1, 2, 4),
        img_sizes=(32,),
        model_kwargs=TINY,
        device="cpu",
        threads=1,
        rounds=3,
    )
    rows = {r["batch_size"]: r for r in profile(["vit_tiny_patch16_224"], opts).records}
    assert [rows[b]["latency_noisy"] for b in (1, 2, 4)] == [False, True, False]
    assert rows[2]["latency_rounds_disagree"]
    assert rows[2]["latency_extra_rounds"] == EXTRA_ROUNDS
    assert synthetic_timing == {1: 3, 2: 3 + EXTRA_ROUNDS, 4: 3}
    # the figure is the median of the rounds: the shifted round does not move it
    assert rows[2]["latency_median_ms"] == pytest.approx(1.0, rel=0.02)
    assert sorted(r["point"] for r in rows.values()) == [0, 1, 2]


BURN = "import time\nend = time.monotonic() + 60\nwhile time.monotonic() < end: pass"


@pytest.mark.slow
def test_load_during_one_point_flags_that_point() -> None:
    """Busy processes start when batch 2's first round starts and stop at the next step."""
    burners: list[subprocess.Popen] = []

    def on_step(text: str, _done: int) -> None:
        for proc in burners:
            proc.kill()
            proc.wait()
        burners.clear()
        if text.endswith("infer batch 2"):
            burners.extend(subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(4))

    opts = ProfileOptions(
        metrics=frozenset({"params", "latency"}),
        batch_sizes=(1, 2, 4),
        img_sizes=(64,),
        model_kwargs=dict(TINY, depth=2),
        device="cpu",
        threads=1,
        budget_s=1.5,
        warmup=1,
    )
    try:
        rows = {
            r["batch_size"]: r
            for r in profile(["vit_tiny_patch16_224"], opts, on_step=on_step).records
        }
    finally:
        on_step("", 0)
    loaded = rows[2]
    assert loaded["latency_noisy"], loaded["latency_round_medians_ms"]
    first, *rest = loaded["latency_round_medians_ms"]
    # slower than the point's quietest round (not necessarily the slowest: on a machine loaded
    # by others, a later round can be slowed too)
    assert first > min(rest)
