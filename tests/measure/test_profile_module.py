"""Profiling and analysing a built ``nn.Module``, as fvcore and ptflops take one."""

from __future__ import annotations

import runpy

import pytest
import timm
import torch
from torch import nn
from user_models import write_model_file

from vitbench.attention import AttentionOptions, ImageSource, analyze_attention
from vitbench.errors import VitbenchError
from vitbench.measure.profile import ProfileOptions, profile

COUNTS = dict(metrics=frozenset({"params", "flops"}), device="cpu")


def _linear() -> nn.Module:
    """(3, 8, 8) images to 10 logits through one matrix: 192 x 10 multiply-adds."""
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10))


def test_a_module_is_counted_with_the_input_size_given() -> None:
    module = _linear()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    (row,) = profile([module], ProfileOptions(input_size=(3, 8, 8), **COUNTS)).records
    assert row["macs"] == 192 * 10 and row["params"] == 192 * 10 + 10
    assert (row["model"], row["weights"], row["img_size"], row["in_chans"]) == (
        "Sequential", "module", 8, 3,
    )  # fmt: skip
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())


def test_a_module_that_declares_its_size_needs_none() -> None:
    """timm's module says its size; the counts are those of the same model profiled by name."""
    arch = dict(patch_size=8, embed_dim=32, depth=1, num_heads=2)
    module = timm.create_model("vit_tiny_patch16_224", img_size=32, **arch)
    (mine,) = profile([module], ProfileOptions(**COUNTS), model_name="my:vit").records
    by_name = ProfileOptions(img_sizes=(32,), model_kwargs=arch, **COUNTS)
    (named,) = profile(["vit_tiny_patch16_224"], by_name).records
    assert mine["model"] == "my:vit" and mine["img_size"] == 32  # a name, never a spec
    assert (mine["params"], mine["macs"], mine["tokens"]) == (
        named["params"], named["macs"], named["tokens"],
    )  # fmt: skip


def test_a_module_that_declares_nothing_needs_input_size() -> None:
    with pytest.raises(VitbenchError, match="declares no input size: input_size"):
        profile([_linear()], ProfileOptions(**COUNTS))


@pytest.mark.parametrize(
    "options",
    [
        dict(img_sizes=(32, 64)),
        dict(patch_sizes=(8,)),
        dict(model_kwargs={"depth": 2}),
        dict(num_classes=3),
        dict(pretrained=True),
    ],
)
def test_options_that_rebuild_are_refused_for_a_module(options) -> None:
    opts = ProfileOptions(input_size=(3, 8, 8), **COUNTS, **options)
    with pytest.raises(VitbenchError, match="a built module keeps its shape and weights: "):
        profile([_linear()], opts)


def test_model_name_names_one_module() -> None:
    with pytest.raises(VitbenchError, match="model_name names a built module"):
        profile([_linear(), _linear()], ProfileOptions(input_size=(3, 8, 8)), model_name="x")


def test_a_module_is_timed_and_its_weights_kept() -> None:
    """Training steps are timed on a copy: the optimizer steps leave the module's weights."""
    module = _linear()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    opts = ProfileOptions(
        metrics=frozenset({"params", "flops", "latency"}),
        modes=("infer", "train"),
        input_size=(3, 8, 8),
        device="cpu",
        budget_s=0.05,
        rounds=1,
        warmup=0,
        min_runs=2,
    )
    infer, train = profile([module], opts).records
    assert infer["latency_median_ms"] > 0 and infer["macs"] == 1920
    assert train["mode"] == "train" and train["latency_median_ms"] > 0
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())


def test_analysis_of_a_module_that_declares_no_size_takes_input_size(tmp_path) -> None:
    """A hand-written ViT that takes any size: input_size decides the images' size."""
    net = runpy.run_path(str(write_model_file(tmp_path)))["sizeless"]()
    opts = AttentionOptions(n_images=2, importance="none", input_size=(3, 32, 24), device="cpu")
    analysis = analyze_attention(net, ImageSource("digits"), opts)
    assert {r["img_size"] for r in analysis.records} == {"32x24"}
    assert len(analysis.records) == 2  # one layer of two heads
    with pytest.raises(VitbenchError, match="input_size"):
        analyze_attention(net, ImageSource("digits"), AttentionOptions(n_images=2, device="cpu"))
