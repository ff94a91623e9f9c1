"""The profile sweep as a library: records per point, out-of-memory back-off, validation."""

from __future__ import annotations

import pytest
import torch

from vitbench.errors import VitbenchError
from vitbench.measure import profile as profile_mod
from vitbench.measure.profile import ProfileOptions, profile

TINY = dict(patch_size=8, embed_dim=32, depth=1, num_heads=2)
QUICK = dict(img_sizes=(32,), model_kwargs=TINY, budget_s=0.05, warmup=0, min_runs=2, threads=1)


@pytest.fixture
def oom_above_two(monkeypatch):
    """Pretend the device holds at most two images: bigger batches raise out-of-memory."""
    real = profile_mod.example_inputs

    def inputs(model, spec, batch_size, device):
        if batch_size > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real(model, spec, batch_size, device)

    monkeypatch.setattr(profile_mod, "example_inputs", inputs)


def test_out_of_memory_is_recorded_and_the_batch_halved(oom_above_two) -> None:
    opts = ProfileOptions(metrics=frozenset({"params", "latency"}), batch_sizes=(8,), **QUICK)
    rows = profile(["vit_tiny_patch16_224"], opts)
    assert [(r["batch_size"], r["status"]) for r in rows] == [(8, "oom"), (4, "oom"), (2, "ok")]
    assert "out of memory" in rows[0]["error"] and rows[2]["latency_median_ms"] > 0


def test_without_back_off_one_oom_row_and_the_sweep_goes_on(oom_above_two) -> None:
    opts = ProfileOptions(
        metrics=frozenset({"params", "latency"}), batch_sizes=(8, 1), oom_backoff=False, **QUICK
    )
    rows = profile(["vit_tiny_patch16_224"], opts)
    assert [(r["batch_size"], r["status"]) for r in rows] == [(8, "oom"), (1, "ok")]


def test_one_record_per_model_shape_and_batch() -> None:
    opts = ProfileOptions(
        metrics=frozenset({"params", "flops"}),
        batch_sizes=(1, 2),
        img_sizes=(32, 64),
        model_kwargs=TINY,
    )
    rows = profile(["vit_tiny_patch16_224", "deit_tiny_patch16_224"], opts)
    assert len(rows) == 2 * 2 * 2
    assert {(r["img_size"], r["tokens"]) for r in rows} == {(32, 17), (64, 65)}
    assert all(r["macs_batch"] == r["macs"] * r["batch_size"] for r in rows)
    assert all(r["fused_attn"] is True and r["threads"] >= 1 for r in rows)


@pytest.mark.parametrize(
    "opts",
    [
        ProfileOptions(metrics=frozenset({"speed"})),
        ProfileOptions(precision="fp8"),
        ProfileOptions(batch_sizes=(0,)),
        ProfileOptions(threads=0),
        ProfileOptions(budget_s=0),
        ProfileOptions(device="cpu", precision="fp16"),
    ],
)
def test_impossible_options_are_user_errors(opts: ProfileOptions) -> None:
    with pytest.raises(VitbenchError):
        opts.validate()
