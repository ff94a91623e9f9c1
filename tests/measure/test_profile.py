"""The profile sweep as a library: records per point, out-of-memory back-off, validation, and
each point stored the moment it is measured."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vitbench.errors import VitbenchError
from vitbench.measure import point as point_mod
from vitbench.measure.closed_form import ViTShape, vit_macs_terms
from vitbench.measure.profile import ProfileOptions, profile
from vitbench.store import SCHEMA_VERSION, open_store, read_table
from vitbench.zoo import ModelSpec, create_model

TINY = dict(patch_size=8, embed_dim=32, depth=1, num_heads=2)
QUICK = dict(img_sizes=(32,), model_kwargs=TINY, budget_s=0.05, warmup=0, min_runs=2, threads=1)
COUNTS = ProfileOptions(
    metrics=frozenset({"params", "flops"}),
    batch_sizes=(1, 2),
    img_sizes=(32, 64),
    model_kwargs=TINY,
)
MODELS = ["vit_tiny_patch16_224", "deit_tiny_patch16_224"]


def _torch_count(name: str, img_size: int, batch_size: int) -> int:
    """MACs of one forward pass of ``batch_size`` images counted by torch's FlopCounterMode.

    torch counts matmuls, convolutions and attention at 2 FLOPs per MAC, and no layer norms:
    those (5 MACs per element, the fvcore convention vitbench follows) come from the closed form.
    """
    model = create_model(ModelSpec(name, img_size=img_size, kwargs=TINY), device="meta")
    with FlopCounterMode(display=False) as counter:
        model(torch.empty(batch_size, 3, img_size, img_size, device="meta"))
    layer_norms = vit_macs_terms(ViTShape(img_size=img_size, **TINY))["layer_norms"]
    return counter.get_total_flops() // 2 + batch_size * layer_norms


@pytest.fixture
def oom_above_two(monkeypatch):
    """Pretend the device holds at most two images: bigger batches raise out-of-memory."""
    real = point_mod.example_inputs

    def inputs(model, spec, batch_size, device, **kwargs):
        if batch_size > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return real(model, spec, batch_size, device, **kwargs)

    monkeypatch.setattr(point_mod, "example_inputs", inputs)


def test_out_of_memory_is_recorded_and_the_batch_halved(oom_above_two) -> None:
    opts = ProfileOptions(metrics=frozenset({"params", "latency"}), batch_sizes=(8,), **QUICK)
    rows = profile(["vit_tiny_patch16_224"], opts).records
    assert [(r["batch_size"], r["status"]) for r in rows] == [(8, "oom"), (4, "oom"), (2, "ok")]
    assert [r["point"] for r in rows] == [0, 1, 2]
    assert "out of memory" in rows[0]["error"] and rows[2]["latency_median_ms"] > 0


def test_without_back_off_one_oom_row_and_the_sweep_goes_on(oom_above_two) -> None:
    opts = ProfileOptions(
        metrics=frozenset({"params", "latency"}), batch_sizes=(8, 1), oom_backoff=False, **QUICK
    )
    rows = profile(["vit_tiny_patch16_224"], opts).records
    assert [(r["batch_size"], r["status"]) for r in rows] == [(8, "oom"), (1, "ok")]


def test_one_record_per_model_shape_and_batch_stamped_without_a_store() -> None:
    run = profile(MODELS, COUNTS)
    rows = run.records
    assert len(rows) == 2 * 2 * 2
    assert {(r["img_size"], r["tokens"]) for r in rows} == {(32, 17), (64, 65)}
    for r in rows:  # the batch's MACs, against torch's own counter run at that batch size
        assert r["macs_batch"] == _torch_count(r["model"], r["img_size"], r["batch_size"]), r
    assert all(r["fused_attn"] is True and r["threads"] >= 1 for r in rows)
    assert [r["point"] for r in rows] == list(range(8))
    assert {r["run_id"] for r in rows} == {run.run_id}
    assert all(r["schema_version"] == SCHEMA_VERSION and r["env_torch"] for r in rows)
    assert {f["model"] for f in run.fits} == set(MODELS)
    assert all(f["run_id"] == run.run_id for f in run.fits)


def test_points_and_fits_are_stored(store_url: str) -> None:
    with open_store(store_url) as st:
        run = profile(MODELS, COUNTS, store=st)
    stored = read_table(store_url, "profile")
    assert list(stored["point"]) == list(range(8))
    assert list(stored["macs"]) == [r["macs"] for r in run.records]
    fits = read_table(store_url, "profile_fit")
    assert len(fits) == len(run.fits) > 0 and set(fits["run_id"]) == {run.run_id}


def test_each_point_is_stored_as_it_is_measured(store_url: str) -> None:
    seen: list[dict[str, Any]] = []

    def interrupt_after_two(row: dict[str, Any]) -> None:
        seen.append(row)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with open_store(store_url) as st, pytest.raises(KeyboardInterrupt):
        profile(MODELS, COUNTS, store=st, on_record=interrupt_after_two)
    stored = read_table(store_url, "profile")
    assert list(stored["point"]) == [0, 1] and set(stored["run_id"]) == {seen[0]["run_id"]}
    assert read_table(store_url, "profile_fit").empty  # fits come after the last point
    with open_store(store_url) as st:
        again = profile(MODELS, COUNTS, store=st)
        assert st.counts()["profile"] == 2 + 8
    stored = read_table(store_url, "profile")
    assert not stored.duplicated(["run_id", "point"]).any()
    assert (stored["run_id"] == again.run_id).sum() == 8


def test_a_failing_model_keeps_the_points_before_it(store_url: str) -> None:
    seen: list[dict[str, Any]] = []
    models = ["vit_tiny_patch16_224", "swin_tiny_patch4_window7_224"]  # swin takes no depth=
    with open_store(store_url) as st, pytest.raises(VitbenchError, match="swin"):
        profile(models, COUNTS, store=st, on_record=seen.append)
    stored = read_table(store_url, "profile")
    assert len(stored) == len(seen) == 4 and set(stored["model"]) == {"vit_tiny_patch16_224"}


@pytest.mark.parametrize(
    "opts",
    [
        ProfileOptions(metrics=frozenset({"speed"})),
        ProfileOptions(precision="fp8"),
        ProfileOptions(batch_sizes=(0,)),
        ProfileOptions(threads=0),
        ProfileOptions(budget_s=0),
        ProfileOptions(device="cpu", precision="fp16"),
        ProfileOptions(device="meta", metrics=frozenset({"params", "latency"})),
        ProfileOptions(device="meta", metrics=frozenset({"params", "memory"})),
        ProfileOptions(device="tpu"),
        ProfileOptions(device="hpu"),
        ProfileOptions(in_chans=0),
        ProfileOptions(num_classes=-3),
        ProfileOptions(warmup=-5),
        ProfileOptions(min_runs=-1),
        ProfileOptions(min_runs=10, max_runs=9),
        ProfileOptions(rel_precision=0),
        ProfileOptions(checkpoint="/nonexistent/weights.safetensors"),
    ],
)
def test_impossible_options_are_user_errors(opts: ProfileOptions) -> None:
    with pytest.raises(VitbenchError):
        opts.validate()


def test_meta_device_counts_but_never_times() -> None:
    opts = ProfileOptions(metrics=frozenset({"params", "flops"}), device="meta", **QUICK)
    (row,) = profile(["vit_tiny_patch16_224"], opts).records
    assert row["macs"] > 0 and "latency_median_ms" not in row and row["device_type"] == "meta"


def test_a_training_step_is_profiled_beside_inference() -> None:
    """Train rows: the step's MACs from the closed form, weights and gradients from the
    parameter count, AdamW's two moments, and their own fits."""
    from vitbench.measure.closed_form import vit_params, vit_train_macs

    opts = ProfileOptions(
        metrics=frozenset({"params", "flops", "latency", "memory"}),
        modes=("infer", "train"),
        img_sizes=(32, 48, 64),
        model_kwargs=TINY,
        budget_s=0.1,
        warmup=0,
        min_runs=2,
        threads=1,
        rounds=1,
    )
    run = profile(["vit_tiny_patch16_224"], opts)
    train = [r for r in run.records if r["mode"] == "train"]
    assert [r["mode"] for r in run.records].count("infer") == 3 and len(train) == 3
    for r in train:
        shape = ViTShape(img_size=r["img_size"], **TINY)
        assert r["train_macs"] == vit_train_macs(shape) and r["train_recompute_macs"] == 0
        weights = 4 * vit_params(shape)  # fp32
        assert r["train_memory_weights_bytes"] == weights
        # storages are counted: the position embedding's gradient may be a view of a buffer
        # as large as the token sequence, so at most one (tokens, dim) fp32 tensor more
        extra = r["train_memory_grads_bytes"] - weights
        assert 0 <= extra <= 4 * r["tokens"] * TINY["embed_dim"]
        assert r["train_memory_optimizer_bytes"] >= 2 * weights  # AdamW: two moments each
        assert r["train_memory_peak_bytes"] >= weights + 2 * weights
        assert r["optimizer"] == "adamw" and r["latency_median_ms"] > 0
    fits = {(f["mode"], f["metric"]) for f in run.fits}
    assert {("train", "train_macs"), ("train", "train_memory_saved_bytes")} <= fits
    assert ("infer", "macs") in fits and ("train", "macs") not in fits


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("c++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_compiled_model_is_timed_and_measured_in_both_modes() -> None:
    """torch.compile's fake tensors stay in memory: the memory readings must step over them;
    the saved-tensor hooks see what the compiled graph saves."""
    opts = ProfileOptions(
        metrics=frozenset({"params", "latency", "memory"}),
        modes=("infer", "train"),
        compile=True,
        **{**QUICK, "model_kwargs": dict(TINY)},
        rounds=1,
    )
    rows = {r["mode"]: r for r in profile(["vit_tiny_patch16_224"], opts).records}
    assert rows["infer"]["compiled"] and rows["infer"]["memory_peak_bytes"] > 0
    train = rows["train"]
    assert train["status"] == "ok" and train["train_memory_peak_bytes"] > 0
    assert train["train_memory_saved_bytes"] > 0
    assert train["train_memory_saved_method"] == "saved-tensor hooks"
    assert train["train_memory_weights_bytes"] == 4 * train["params"]
