"""The MAC counter against independent truths: closed form, fvcore, published tables."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from vitbench.measure.closed_form import ViTShape, vit_macs, vit_macs_terms, vit_params
from vitbench.measure.flops import count_macs, count_train_macs
from vitbench.measure.model_cost import count_model
from vitbench.reference import BENCHMARK_TABLE, published_for
from vitbench.zoo import ModelSpec, create_model, set_fused_attn


def vit_spec(s: ViTShape) -> ModelSpec:
    return ModelSpec(
        "vit_base_patch16_224",
        img_size=s.img_size,
        in_chans=s.in_chans,
        num_classes=s.num_classes,
        kwargs=dict(
            patch_size=s.patch_size, embed_dim=s.embed_dim, depth=s.depth, num_heads=s.num_heads
        ),
    )


@pytest.mark.parametrize(
    "shape",
    [
        ViTShape(),  # ViT-B/16 at 224: 197 tokens
        ViTShape(img_size=64, patch_size=8, embed_dim=96, depth=3, num_heads=3),  # 65 tokens
        ViTShape(img_size=32, patch_size=16, embed_dim=64, depth=2, num_heads=2),  # 5 tokens
        ViTShape(img_size=384, patch_size=16, embed_dim=192, depth=1, num_heads=3),  # 577 tokens
        ViTShape(img_size=16, patch_size=16, embed_dim=32, depth=1, num_heads=1, in_chans=1),
    ],
)
def test_counter_equals_closed_form(shape: ViTShape) -> None:
    cost = count_model(vit_spec(shape))
    assert cost.tokens == shape.tokens
    assert cost.params == vit_params(shape)
    assert cost.macs == vit_macs(shape)
    assert cost.uncounted == {}


def test_vit_b16_closed_form_is_the_published_figure() -> None:
    # timm's table: 86.57M params and 17.58 GMACs for vit_base_patch16_224
    assert vit_params(ViTShape()) == 86_567_656
    assert round(vit_macs(ViTShape()) / 1e9, 2) == 17.58


@pytest.mark.parametrize("name", BENCHMARK_TABLE)
def test_benchmark_table_within_one_percent(name: str) -> None:
    pub = published_for(name)
    cost = count_model(ModelSpec(name))
    assert round(cost.params / 1e6, 2) == pytest.approx(pub["params_m"], abs=0.005)
    assert cost.macs / 1e9 == pytest.approx(pub["gmacs"], rel=0.01)


FAMILIES = [
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "deit_base_distilled_patch16_224",
    "pvt_v2_b0",
    "cait_xxs24_224",
    "crossvit_tiny_240",
    "beit_base_patch16_224",
    "swin_small_patch4_window7_224",
]


@pytest.mark.parametrize("name", FAMILIES)
def test_other_families_match_timm_published(name: str) -> None:
    pub = published_for(name)
    cost = count_model(ModelSpec(name))
    assert round(cost.params / 1e6, 2) == pytest.approx(pub["params_m"], abs=0.005)
    assert cost.macs / 1e9 == pytest.approx(pub["gmacs"], rel=0.01)


def _small(name: str, img_size: int, **kw) -> ModelSpec:
    return ModelSpec(name, img_size=img_size, num_classes=10, kwargs=kw)


SMALL = [
    _small("vit_small_patch16_224", 64, depth=2),
    _small("deit_tiny_distilled_patch16_224", img_size=64, depth=2),
    _small("swin_tiny_patch4_window7_224", img_size=112, depths=(1, 1, 1, 1)),
    _small("pvt_v2_b0", img_size=64),
    _small("cait_xxs24_224", img_size=64, depth=2, depth_token_only=1),
    _small("beit_base_patch16_224", img_size=64, depth=2, embed_dim=96, num_heads=3),
    _small("crossvit_tiny_240", img_size=120),  # the second branch scales it to 112
]


#: families that pool with nn.AdaptiveAvgPool2d (a mean below it) and use hardswish (LeViT)
POOLED = [
    _small("mobilevit_xxs", img_size=64),
    _small("levit_128s", img_size=64),
    _small("coatnet_0_rw_224", img_size=64, depths=(1, 1, 1, 1)),
    _small("maxvit_tiny_tf_224", img_size=64, depths=(1, 1, 1, 1)),
]


@pytest.mark.parametrize("spec", SMALL + POOLED, ids=lambda s: s.name)
def test_count_agrees_with_fvcore_with_fused_attention_off(spec: ModelSpec) -> None:
    """fvcore is the reference for the convention; it needs the unfused (explicit) attention."""
    from fvcore.nn import FlopCountAnalysis

    torch.manual_seed(0)
    model = create_model(spec)
    set_fused_attn(model, False)
    x = torch.randn(2, 3, *_hw(spec))
    ref = FlopCountAnalysis(model, x)
    ref.unsupported_ops_warnings(False)
    ref.uncalled_modules_warnings(False)
    ours = count_macs(model, (x,))
    assert ours.macs == pytest.approx(ref.total(), rel=1e-3 if "crossvit" in spec.name else 1e-9)


def _hw(spec: ModelSpec) -> tuple[int, int]:
    return spec.img_size, spec.img_size


@pytest.mark.parametrize("spec", SMALL, ids=lambda s: s.name)
def test_count_same_fused_or_not_and_on_meta(spec: ModelSpec) -> None:
    """Fused attention kernels (CPU flash, CUDA flash/efficient) count as explicit matmuls do,
    forward and in a training step's backward."""
    devices = ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])
    counts = []
    for device, fused in itertools.product(devices, (True, False)):
        model = create_model(spec, device=device)
        set_fused_attn(model, fused)
        cost = count_model(spec, model=model, device=device, train=True)
        counts.append((cost.macs, cost.train_macs))
        assert cost.train.backward.uncounted == {}
    assert len(set(counts)) == 1, counts


def test_fused_attention_kernel_is_counted_on_cpu() -> None:
    spec = _small("vit_small_patch16_224", img_size=64, depth=1)
    model = create_model(spec)
    set_fused_attn(model, True)
    result = count_macs(model, (torch.randn(1, 3, 64, 64),))
    assert result.by_op.get("_scaled_dot_product_flash_attention_for_cpu", 0) > 0


class PoolsAndHardswish(nn.Module):
    """Convolution, hardswish and hardsigmoid, a global and a 3 x 3 adaptive average pool."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.Hardswish()
        self.pool = nn.AdaptiveAvgPool2d(1)  # torch runs it as a mean over H and W
        self.fc = nn.Linear(8 + 8 * 9, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 5)
        x = nn.functional.hardsigmoid(self.act(self.conv(x)))
        grid = nn.functional.adaptive_avg_pool2d(x, 3)
        return self.fc(torch.cat([self.pool(x).flatten(1), grid.flatten(1)], 1))


def test_pooling_and_activations_follow_fvcore() -> None:
    """fvcore counts adaptive average pooling 1 per input element and activations zero."""
    from fvcore.nn import FlopCountAnalysis

    model, x = PoolsAndHardswish(), torch.randn(2, 3, 10, 10)
    ref = FlopCountAnalysis(model, x)
    ref.unsupported_ops_warnings(False)
    ours = count_macs(model, (x,))
    assert ours.macs == ref.total()
    assert ours.by_op["adaptive_avg_pool2d"] == ref.by_operator()["adaptive_avg_pool2d"]
    assert ours.uncounted == {}
    step = count_train_macs(model, (x,), lambda out: out.sum())
    assert step.uncounted == {}


def test_uncounted_operator_is_reported() -> None:
    class Odd(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.linalg.inv(x)  # no handle, not free by convention

    result = count_macs(Odd(), (torch.eye(3) * 2,))
    assert result.uncounted and any("inv" in k for k in result.uncounted)


def test_module_breakdown_adds_up() -> None:
    spec = _small("vit_small_patch16_224", img_size=64, depth=3)
    cost = count_model(spec)
    top = cost.count.module_breakdown(1)
    assert sum(top.values()) == cost.macs
    blocks = {k: v for k, v in cost.count.module_breakdown(2).items() if k.startswith("blocks.")}
    assert len(blocks) == 3 and len(set(blocks.values())) == 1
    assert sum(blocks.values()) == top["blocks"]
    # each module against the closed form's terms (vit_small: width 384, 6 heads)
    terms = vit_macs_terms(
        ViTShape(img_size=64, embed_dim=384, depth=3, num_heads=6, num_classes=10)
    )
    one_norm = terms["layer_norms"] // 7  # two per block, one after the last
    in_blocks = ("qkv", "attn_scores", "attn_values", "attn_proj", "mlp")
    assert top == {
        "patch_embed": terms["patch_embed"],
        "blocks": sum(terms[k] for k in in_blocks) + 6 * one_norm,
        "norm": one_norm,
        "head": terms["head"],
    }


def test_batch_scales_macs_linearly() -> None:
    spec = _small("vit_small_patch16_224", img_size=64, depth=1)
    assert count_model(spec, batch_size=4).macs == 4 * count_model(spec, batch_size=1).macs


@pytest.mark.slow
def test_vit_22b_shape_counts_on_meta_without_weights() -> None:
    spec = ModelSpec("vit_base_patch16_224", kwargs=dict(embed_dim=6144, depth=48, num_heads=48))
    cost = count_model(spec)
    shape = ViTShape(embed_dim=6144, depth=48, num_heads=48)
    assert cost.params == vit_params(shape)
    assert 21.5e9 < cost.params < 22.0e9
    assert cost.macs == vit_macs(shape)
