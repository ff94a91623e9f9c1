"""Extraction: the weights are the model's own softmax, the output does not change, every
family gives maps of the right shape, and a model without readable attention is an error."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from vitbench.attention.extract import (
    AttentionExtractor,
    extract_attention,
    find_attention_layers,
)
from vitbench.attention.geometry import layout_for
from vitbench.errors import VitbenchError
from vitbench.zoo import set_fused_attn

torch.manual_seed(0)


def tiny_vit(**kw) -> nn.Module:
    return timm.create_model("vit_small_patch16_224", img_size=64, depth=2, **kw).eval()


def explicit_softmax(attn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) written out from the layer's qkv weights: (B, H, N, N)."""
    b, n, c = x.shape
    h = attn.num_heads
    d = c // h
    qkv = x @ attn.qkv.weight.T + attn.qkv.bias  # (B, N, 3C)
    q, k = qkv[..., :c], qkv[..., c : 2 * c]
    q = q.reshape(b, n, h, d).transpose(1, 2)
    k = k.reshape(b, n, h, d).transpose(1, 2)
    return torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)


@pytest.mark.parametrize("fused", [True, False])
def test_weights_equal_explicit_softmax_from_the_layers_own_qkv(fused):
    model = tiny_vit()
    set_fused_attn(model, fused)
    inputs = {}
    for i, blk in enumerate(model.blocks):
        blk.attn.register_forward_hook(lambda m, a, o, i=i: inputs.__setitem__(i, a[0]))
    x = torch.randn(2, 3, 64, 64)
    _, maps = extract_attention(model, x)
    assert len(maps) == 2
    for i, blk in enumerate(model.blocks):
        assert maps[i].shape == (2, 6, 17, 17)
        assert torch.allclose(maps[i], explicit_softmax(blk.attn, inputs[i]), atol=1e-6)


@pytest.mark.parametrize("fused", [True, False])
def test_logits_unchanged_with_extraction_on(fused):
    model = tiny_vit()
    set_fused_attn(model, fused)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        out, _ = extract_attention(model, x)
        after = model(x)
    assert torch.equal(out, before)  # timm's Attention is read by recomputing: bit for bit
    assert torch.equal(after, before)  # and nothing is left switched or hooked afterwards
    assert set_fused_attn(model, None) is fused


def test_unfused_reader_restores_fused_attention_and_keeps_the_output():
    model = timm.create_model(
        "beit_base_patch16_224", img_size=64, depth=2, embed_dim=64, num_heads=2
    ).eval()
    set_fused_attn(model, True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        out, maps = extract_attention(model, x)
    assert torch.allclose(out, before, atol=1e-5)  # the module's own explicit path
    assert set_fused_attn(model, None) is True
    assert [m.shape for m in maps] == [(2, 2, 17, 17)] * 2


FAMILIES = {
    # name: (kwargs, image size, expected (kind, queries, keys) of each layer in module order)
    "deit_tiny_distilled_patch16_224": (
        dict(img_size=64, depth=2),
        64,
        [("self", 18, 18)] * 2,  # two prefix tokens: class and distillation
    ),
    "cait_xxs24_224": (
        dict(img_size=64, depth=1, depth_token_only=1),
        64,
        [("self", 16, 16), ("class", 1, 17)],
    ),
    "crossvit_tiny_240": (
        dict(img_size=120, depth=((1, 1, 0),)),
        120,
        [("self", 101, 101), ("self", 50, 50), ("cross", 1, 50), ("cross", 1, 101)],
    ),
    "pvt_v2_b0": (
        dict(depths=(1, 1, 1, 1)),
        64,
        [("reduced", 256, 4), ("reduced", 64, 4), ("reduced", 16, 4), ("reduced", 4, 4)],
    ),
    "swin_tiny_patch4_window7_224": (
        dict(img_size=112, depths=(1, 1, 1, 1), embed_dim=32, num_heads=(1, 2, 2, 4)),
        112,
        [("window", 49, 49)] * 3 + [("window", 16, 16)],
    ),
}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_each_family_extracts_maps_with_their_token_layout(name):
    kwargs, size, expected = FAMILIES[name]
    model = timm.create_model(name, **kwargs).eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        before = model(x)
    out, maps = extract_attention(model, x, name)
    assert torch.allclose(out, before, atol=1e-5)
    layers = find_attention_layers(model)
    got = []
    for layer, w in zip(layers, maps, strict=True):
        assert w.shape[1] == layer.num_heads
        layout = layout_for(model, layer.name, (size, size), w.shape[-2], w.shape[-1])
        assert layout is not None, layer.name
        got.append((layout.kind, w.shape[-2], w.shape[-1]))
        if layout.kind != "window":
            assert w.shape[0] == 1
        assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-4)  # talking heads: pre-mix
    assert got == expected


class OwnAttention(nn.Module):
    """An attention module following vitbench's own contract (keep_attn / last_attn)."""

    def __init__(self, dim: int = 8, num_heads: int = 2) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.keep_attn, self.last_attn = False, None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-1, -2) * self.head_dim**-0.5).softmax(-1)
        if self.keep_attn:
            self.last_attn = attn
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


def test_own_models_are_read_through_keep_attn_and_left_as_they_were():
    model = nn.Sequential(OwnAttention(), OwnAttention()).eval()
    x = torch.randn(3, 5, 8)
    out, maps = extract_attention(model, x)
    assert [m.shape for m in maps] == [(3, 2, 5, 5)] * 2
    assert torch.equal(out, model(x))
    assert all(not m.keep_attn and m.last_attn is None for m in model)


def test_a_model_without_readable_attention_is_an_error_naming_it():
    convnet = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    with pytest.raises(VitbenchError, match="tiny_convnet"):
        extract_attention(convnet, torch.randn(1, 3, 8, 8), "tiny_convnet")


def test_a_layer_that_runs_without_exposing_weights_is_an_error():
    class SilentAttention(OwnAttention):
        def forward(self, x):
            self.keep_attn = False  # a path that never stores its weights
            return super().forward(x)

    model = nn.Sequential(SilentAttention()).eval()
    with pytest.raises(VitbenchError, match="ran without exposing"):
        with AttentionExtractor(model, lambda *_: None, "silent") as ex:
            ex.run(torch.randn(1, 4, 8))


@pytest.mark.parametrize(
    ("name", "prefix"),
    [("scratch_vit_tiny_patch16_224", 1), ("scratch_deit_tiny_distilled_patch16_224", 2)],
)
def test_vitbench_own_vits_are_read_with_their_prefix_tokens(name, prefix):
    from vitbench.zoo import ModelSpec, create_model

    model = create_model(ModelSpec(name, img_size=32, kwargs={"depth": 2}))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
    out, maps = extract_attention(model, x, name)
    assert torch.allclose(out, before, atol=1e-5)
    assert [m.shape for m in maps] == [(2, 3, prefix + 4, prefix + 4)] * 2
    layout = layout_for(model, "blocks.0.attn", (32, 32), prefix + 4, prefix + 4)
    assert (layout.n_prefix_k, layout.cls_key, layout.grid) == (prefix, 0, (2, 2))
