"""The scratch ViT equals timm's given the same weights (through the documented key mapping);
its parts (patch embeddings, positions, tokens) do what their equations say."""

from __future__ import annotations

import math

import pytest
import timm
import torch
from torch import nn

from vitbench.zoo import ModelSpec, create_model, set_fused_attn
from vitbench.zoo.scratch.blocks import DropPath, LayerScale
from vitbench.zoo.scratch.patch_embed import LinearPatchEmbed, OverlapPatchEmbed, PatchEmbed
from vitbench.zoo.scratch.position import (
    RelativePositionBias,
    SinCos2dPositionEmbedding,
    sinusoidal_table,
)
from vitbench.zoo.scratch.timm_mapping import load_timm_vit, timm_vit_to_scratch
from vitbench.zoo.scratch.vit import VisionTransformer

TOL = dict(atol=1e-5, rtol=1e-5)
SMALL = dict(embed_dim=32, depth=2, num_heads=2)


@torch.no_grad()
def timm_and_scratch(name: str, **kwargs) -> tuple[nn.Module, nn.Module]:
    """timm's random-init model with every tensor perturbed, and ours loaded from its state dict."""
    torch.manual_seed(0)
    ref = timm.create_model(name, pretrained=False, **kwargs).eval()
    for p in ref.parameters():
        p.add_(0.05 * torch.randn_like(p))  # LayerNorms away from (1, 0), heads away from zero
    ours = create_model(ModelSpec(f"scratch_{name}", kwargs=kwargs))
    load_timm_vit(ours, ref.state_dict())
    return ref, ours


def test_loads_timm_vit_tiny_and_gives_the_same_logits() -> None:
    ref, ours = timm_and_scratch("vit_tiny_patch16_224")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), **TOL)
        assert torch.allclose(ours.forward_features(x), ref.forward_features(x), **TOL)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(img_size=64, patch_size=8),
        dict(img_size=(48, 32), patch_size=8, in_chans=1, num_classes=10, **SMALL),
        dict(img_size=32, patch_size=4, class_token=False, global_pool="avg", **SMALL),
        dict(img_size=32, patch_size=8, qkv_bias=False, init_values=0.1, **SMALL),
    ],
    ids=["64px-patch8", "non-square-1ch", "avg-pool-no-cls", "layerscale-no-qkv-bias"],
)
def test_timm_equivalence_across_sizes_and_options(kwargs: dict) -> None:
    ref, ours = timm_and_scratch("vit_tiny_patch16_224", **kwargs)
    x = torch.randn(2, ours.in_chans, *ours.patch_embed.img_size)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), **TOL)
    assert ours.patch_embed.grid_size == ref.patch_embed.grid_size
    assert ours.num_prefix_tokens == ref.num_prefix_tokens


def test_distilled_deit_equals_timm() -> None:
    ref, ours = timm_and_scratch(
        "deit_tiny_distilled_patch16_224", img_size=32, patch_size=8, num_classes=7, **SMALL
    )
    assert ours.num_prefix_tokens == 2
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), **TOL)
    ours.train()
    ours.distilled_training = True
    cls_logits, dist_logits = ours(x)
    assert cls_logits.shape == dist_logits.shape == (2, 7)


def test_key_mapping_splits_fused_qkv() -> None:
    sd = {"blocks.0.attn.qkv.weight": torch.arange(12.0).reshape(6, 2), "cls_token": torch.ones(1)}
    out = timm_vit_to_scratch(sd)
    assert set(out) == {
        "blocks.0.attn.q.weight",
        "blocks.0.attn.k.weight",
        "blocks.0.attn.v.weight",
        "tokens.cls_token",
    }
    assert torch.equal(out["blocks.0.attn.k.weight"], sd["blocks.0.attn.qkv.weight"][2:4])


def test_timm_like_interface_and_attention_contract() -> None:
    model = create_model(
        ModelSpec(
            "scratch_vit_tiny_patch16_224",
            img_size=8,
            in_chans=1,
            num_classes=10,
            kwargs=dict(patch_size=2, embed_dim=64, depth=4, num_heads=4),
        )
    )
    pe = model.patch_embed
    assert (pe.num_patches, pe.grid_size, pe.img_size, pe.patch_size) == (
        16,
        (4, 4),
        (8, 8),
        (2, 2),
    )
    assert model.num_prefix_tokens == 1 and model.in_chans == 1 and model.num_classes == 10
    assert len(model.blocks) == 4 and all(type(b).__name__.endswith("Block") for b in model.blocks)
    attns = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    assert len(attns) == 4 and all((a.num_heads, a.head_dim) == (4, 16) for a in attns)
    (x,) = model.example_inputs(3)
    assert x.shape == (3, 1, 8, 8)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape == (3, 17, 64) and model.forward_head(feats).shape == (3, 10)
        assert all(a.last_attn is None for a in attns)  # off by default
        for a in attns:
            a.keep_attn = True
        logits = model(x)
    for a in attns:
        assert a.last_attn.shape == (3, 4, 17, 17)
        assert torch.allclose(a.last_attn.sum(-1), torch.ones(3, 4, 17), **TOL)
    # the fused kernel gives the same logits (used when weights are not kept)
    assert set_fused_attn(model, True) is True
    for a in attns:
        a.keep_attn = False
    with torch.no_grad():
        assert torch.allclose(model(x), logits, **TOL)


@pytest.mark.parametrize("pos_embed", ["learn", "sinusoidal", "sincos2d", "rel", "none"])
@pytest.mark.parametrize("patch_embed", ["conv", "linear", "overlap"])
def test_every_position_and_patch_embedding_kind_runs(pos_embed: str, patch_embed: str) -> None:
    model = VisionTransformer(
        img_size=16,
        patch_size=4,
        num_classes=3,
        pos_embed=pos_embed,
        patch_embed=patch_embed,
        embed_dim=16,
        depth=1,
        num_heads=2,
        norm_first=False,
    )
    assert model(*model.example_inputs(2)).shape == (2, 3)


def test_linear_patch_embedding_equals_convolution() -> None:
    torch.manual_seed(0)
    conv, lin = PatchEmbed(12, 4, 3, 8), LinearPatchEmbed(12, 4, 3, 8)
    with torch.no_grad():
        lin.proj.weight.copy_(conv.proj.weight.flatten(1))  # (D, C, p, p) -> (D, C*p*p)
        lin.proj.bias.copy_(conv.proj.bias)
    x = torch.randn(2, 3, 12, 12)
    assert torch.allclose(lin(x), conv(x), **TOL)
    # the first token is patch (0, 0) flattened channel-major, times W^T
    patch = x[:, :, :4, :4].flatten(1)
    assert torch.allclose(lin(x)[:, 0], patch @ lin.proj.weight.T + lin.proj.bias, **TOL)


def test_overlapping_patches_keep_the_grid_and_share_pixels() -> None:
    pe = OverlapPatchEmbed(16, 4, 1, 8)
    assert pe.proj.kernel_size == (7, 7) and pe(torch.randn(1, 1, 16, 16)).shape == (1, 16, 8)
    x = torch.zeros(1, 1, 16, 16)
    x[..., 2, 2] = 1.0  # kernel rows 4i-3..4i+3: pixel 2 lies in patches 0 and 1 of each axis
    touched = (pe(x) - pe(torch.zeros_like(x))).abs().sum(-1)[0] > 0
    assert touched.reshape(4, 4)[:2, :2].all() and touched.sum() == 4
    with pytest.raises(ValueError):
        PatchEmbed(15, 4)


def test_sinusoidal_table_values() -> None:
    pe = sinusoidal_table(50, 8)
    assert torch.allclose(pe[0], torch.tensor([0.0, 1.0] * 4))
    p, i = 7, 1  # PE[p, 2i] = sin(p / 10000^(2i/D))
    angle = p / 10000 ** (2 * i / 8)
    assert math.isclose(pe[p, 2 * i].item(), math.sin(angle), abs_tol=1e-6)
    assert math.isclose(pe[p, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6)


def test_sincos_2d_rows_and_columns() -> None:
    emb = SinCos2dPositionEmbedding((3, 4), num_prefix_tokens=1)
    table = emb(torch.zeros(1, 13, 8))[0]
    assert (table[0] == 0).all()  # class token: no position
    grid = table[1:].reshape(3, 4, 8)
    assert torch.allclose(grid[:, 0, :4], grid[:, 3, :4])  # same row, same first half
    assert torch.allclose(grid[0, :, 4:], grid[2, :, 4:])  # same column, same second half


def test_relative_position_bias_depends_on_offset_only() -> None:
    torch.manual_seed(0)
    rpb = RelativePositionBias((3, 3), num_heads=2, num_prefix_tokens=1)
    nn.init.normal_(rpb.table)
    bias = rpb()[0]  # (heads, 10, 10)
    assert bias.shape == (2, 10, 10) and (bias[:, 0] == 0).all() and (bias[:, :, 0] == 0).all()

    def b(i: tuple[int, int], j: tuple[int, int]) -> torch.Tensor:
        return bias[:, 1 + 3 * i[0] + i[1], 1 + 3 * j[0] + j[1]]

    assert torch.equal(b((0, 0), (1, 2)), b((1, 0), (2, 2)))  # offset (-1, -2) both times
    assert not torch.equal(b((0, 0), (1, 2)), b((0, 0), (2, 1)))


def test_droppath_and_layerscale() -> None:
    x = torch.ones(1000, 3)
    dp = DropPath(0.25)
    assert torch.equal(dp.eval()(x), x)
    y = dp.train()(x)
    assert ((y == 0) | torch.isclose(y, torch.tensor(4 / 3))).all() and (y == y[:, :1]).all()
    assert abs(y.mean().item() - 1.0) < 0.1  # unbiased in expectation
    assert torch.equal(LayerScale(3, 0.1)(x), x * 0.1)
