"""The readers for attention that code computes itself: ``nn.MultiheadAttention``,
``scaled_dot_product_attention`` and an explicit softmax, and timm's windowed families.

The truths are PyTorch's own weights (``need_weights=True``, the math backend of
``scaled_dot_product_attention``), timm's own ``AttentionExtract``, softmaxes written out here
from the layers' weights, and the output with extraction off, bit for bit."""

from __future__ import annotations

import pytest
import timm
import torch
import torchvision
from timm.utils.attention_extract import AttentionExtract
from torch import nn
from torch.nn.functional import scaled_dot_product_attention as sdpa  # bound before extracting

from vitbench.attention.extract import AttentionExtractor, AttentionLayer, extract_attention
from vitbench.attention.stats import LayerStats
from vitbench.errors import VitbenchError
from vitbench.zoo import set_fused_attn

torch.manual_seed(0)


def read(model: nn.Module, x: torch.Tensor):
    """(output with extraction off, output with it on, layers, maps in layer order)."""
    with torch.no_grad():
        before = model(x)
    maps: dict[int, torch.Tensor] = {}
    with (
        torch.no_grad(),
        AttentionExtractor(model, lambda layer, w: maps.update({layer.index: w}), example=x) as ex,
    ):
        out = ex.run(x)
    return before, out, ex.layers, [maps[i] for i in sorted(maps)]


# -- nn.MultiheadAttention -------------------------------------------------------------------


class MhaCall(nn.Module):
    """Calls its ``nn.MultiheadAttention`` as a model would: need_weights=False, its own masks."""

    def __init__(self, mha: nn.MultiheadAttention, kv: torch.Tensor | None, **call) -> None:
        super().__init__()
        self.mha, self.kv, self.call = mha, kv, call

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        kv = q if self.kv is None else self.kv
        return self.mha(q, kv, kv, need_weights=False, **self.call)[0]


def _mha_case(case: str):
    """(mha, kv or None for self-attention, call kwargs, query) for one configuration."""
    n, q_len, kv_len, dim, heads = 2, 5, 7, 8, 2
    if case == "fast_path":  # batch_first self-attention in eval: torch's fused fast path
        mha = nn.MultiheadAttention(dim, heads, batch_first=True)
        return mha, None, {}, torch.randn(n, q_len, dim)
    if case == "separate_projections_masks":  # kdim != embed_dim: q/k/v_proj_weight apart
        mha = nn.MultiheadAttention(dim, heads, kdim=6, vdim=6, batch_first=True)
        kv = torch.randn(n, kv_len, 6)
        keep = torch.rand(q_len, kv_len) > 0.3
        keep[:, 0] = True  # every query keeps a key
        pad = torch.zeros(n, kv_len, dtype=torch.bool)
        pad[1, -2:] = True  # the second sequence's last two keys are padding
        call = dict(attn_mask=~keep, key_padding_mask=pad)  # True: not allowed
        return mha, kv, call, torch.randn(n, q_len, dim)
    # sequence first, no bias, a float 3-D mask (one per batch x head)
    mha = nn.MultiheadAttention(dim, heads, bias=False)
    call = dict(attn_mask=torch.randn(n * heads, q_len, kv_len))
    return mha, torch.randn(kv_len, n, dim), call, torch.randn(q_len, n, dim)


@pytest.mark.parametrize("case", ["fast_path", "separate_projections_masks", "seq_first_float"])
def test_mha_weights_are_pytorchs_own_and_the_output_is_untouched(case):
    mha, kv, call, q = _mha_case(case)
    model = MhaCall(mha.eval(), kv, **call).eval()
    before, out, layers, maps = read(model, q)
    assert torch.equal(out, before)
    assert [(layer.name, layer.reader, layer.num_heads) for layer in layers] == [("mha", "mha", 2)]
    kv = q if kv is None else kv
    with torch.no_grad():
        _, truth = mha(q, kv, kv, need_weights=True, average_attn_weights=False, **call)
    assert truth.shape[:2] == (2, 2)  # (batch, heads, queries, keys) whatever the layout
    assert torch.allclose(maps[0], truth, atol=1e-6)


def test_mha_weights_equal_a_softmax_written_out_from_its_projections():
    mha, kv, call, q = _mha_case("separate_projections_masks")
    model = MhaCall(mha.eval(), kv, **call).eval()
    _, _, _, maps = read(model, q)
    h, d = 2, 4
    bq, bk, _ = mha.in_proj_bias.chunk(3)
    qh = (q @ mha.q_proj_weight.T + bq).unflatten(-1, (h, d)).transpose(1, 2)  # (N, H, L, d)
    kh = (kv @ mha.k_proj_weight.T + bk).unflatten(-1, (h, d)).transpose(1, 2)  # (N, H, S, d)
    scores = qh @ kh.transpose(-1, -2) / d**0.5
    banned = call["attn_mask"][None, None] | call["key_padding_mask"][:, None, None, :]
    explicit = scores.masked_fill(banned, float("-inf")).softmax(-1)
    assert torch.allclose(maps[0], explicit.detach(), atol=1e-6)


def test_a_transformer_encoder_is_read_once_per_layer():
    layer = nn.TransformerEncoderLayer(16, 4, 32, batch_first=True)
    model = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    before, out, layers, maps = read(model, torch.randn(3, 6, 16))
    assert torch.equal(out, before)
    assert [(x.name, x.reader) for x in layers] == [
        ("layers.0.self_attn", "mha"),
        ("layers.1.self_attn", "mha"),
    ]  # the sdpa call inside each is not a layer of its own
    assert [m.shape for m in maps] == [(3, 4, 6, 6)] * 2


# -- scaled_dot_product_attention ------------------------------------------------------------


class SdpaAttention(nn.Module):
    """Hand-written attention through ``scaled_dot_product_attention``; ``calls`` per forward."""

    def __init__(self, dim=8, heads=4, kv_heads=4, calls=1, **sdpa_kwargs) -> None:
        super().__init__()
        self.heads, self.kv_heads, self.calls, self.kw = heads, kv_heads, calls, sdpa_kwargs
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim * kv_heads // heads)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, -1).transpose(1, 2)  # (B, H, N, d)
        k, v = self.kv(x).reshape(b, n, 2, self.kv_heads, -1).permute(2, 0, 3, 1, 4)
        for _ in range(self.calls):
            q = sdpa(q, k, v, **self.kw)
        return self.proj(q.transpose(1, 2).reshape(b, n, c))


SDPA_CASES = {
    "plain": {},
    "bool_mask": dict(attn_mask=torch.rand(6, 6) > 0.4),
    "float_mask": dict(attn_mask=torch.randn(2, 4, 6, 6)),
    "causal_scaled": dict(is_causal=True, scale=0.3),
}


@pytest.mark.parametrize("case", sorted(SDPA_CASES) + ["gqa"])
def test_sdpa_weights_equal_pytorchs_math_backend_and_weight_its_values(case):
    kw = dict(SDPA_CASES.get(case, {}))
    if "attn_mask" in kw and kw["attn_mask"].dtype == torch.bool:
        kw["attn_mask"] = kw["attn_mask"].clone()
        kw["attn_mask"][:, 0] = True  # every query keeps a key
    heads_kw = dict(kv_heads=2) if case == "gqa" else {}
    kw.update(enable_gqa=case == "gqa")
    attn = SdpaAttention(**heads_kw, **kw)
    inputs = {}
    attn.register_forward_pre_hook(lambda m, a: inputs.update(x=a[0]))
    before, out, layers, maps = read(nn.Sequential(attn).eval(), torch.randn(2, 6, 8))
    assert torch.equal(out, before)
    assert [(layer.name, layer.reader, layer.num_heads) for layer in layers] == [("0", "sdpa", 4)]
    model, xi = attn, inputs["x"]
    q = model.q(xi).reshape(2, 6, 4, 2).transpose(1, 2)
    k, v = model.kv(xi).reshape(2, 6, 2, model.kv_heads, 2).permute(2, 0, 3, 1, 4)
    mask = kw.get("attn_mask")
    if mask is not None and mask.dtype == torch.bool:  # as sdpa hands a bool mask to the backend
        mask = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    _, truth = torch._scaled_dot_product_attention_math(
        q, k, v, mask, 0.0, kw.get("is_causal", False), None,
        scale=kw.get("scale"), enable_gqa=case == "gqa",
    )  # fmt: skip
    assert torch.allclose(maps[0], truth.detach(), atol=1e-6)
    v_all = v.repeat_interleave(4 // model.kv_heads, dim=1)
    real = sdpa(q, k, v, **kw)
    assert torch.allclose(maps[0] @ v_all, real.detach(), atol=1e-5)


class TwoBlocks(nn.Module):
    """Two hand-written sdpa blocks: one that calls sdpa twice, one once; timm's fused
    ``Attention`` beside them, read by its own reader."""

    def __init__(self) -> None:
        super().__init__()
        self.twice = SdpaAttention(calls=2)
        self.once = SdpaAttention(heads=2, kv_heads=2)
        self.timm = timm.layers.Attention(8, num_heads=2)

    def forward(self, x):
        return self.timm(self.once(self.twice(x)))


def test_each_sdpa_call_is_a_layer_named_by_its_module_and_read_once():
    model = TwoBlocks().eval()
    set_fused_attn(model, True)
    before, out, layers, maps = read(model, torch.randn(2, 5, 8))
    assert torch.equal(out, before)
    assert [(x.name, x.reader, x.num_heads) for x in layers] == [
        ("twice#0", "sdpa", 4),
        ("twice#1", "sdpa", 4),
        ("once", "sdpa", 2),
        ("timm", "recompute", 2),
    ]
    assert [m.shape for m in maps] == [(2, 4, 5, 5)] * 2 + [(2, 2, 5, 5)] * 2


def test_an_sdpa_call_the_probe_did_not_see_is_an_error():
    class Batched(SdpaAttention):
        def forward(self, x):
            self.calls = len(x)  # one call per image: the probe (one image) sees one
            return super().forward(x)

    model = Batched().eval()
    extractor = AttentionExtractor(model, lambda *_: None, example=torch.randn(1, 5, 8))
    with pytest.raises(VitbenchError, match="the probe did not see"), extractor:
        extractor.run(torch.randn(2, 5, 8))


def test_sdpa_with_heads_not_third_from_the_end_is_refused_in_one_line():
    class MaskUnits(nn.Module):  # hiera's layout: (batch, heads, units, tokens, dim)
        heads = 2

        def forward(self, x):  # x (B, 2, 3, N, d)
            return sdpa(x, x, x)

    with pytest.raises(VitbenchError, match=r"does not have its 2 heads at dimension -3") as err:
        extract_attention(MaskUnits(), torch.randn(1, 2, 3, 4, 5))
    assert "\n" not in str(err.value)


def test_a_model_without_attention_modules_or_calls_is_an_error():
    convnet = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Softmax(dim=-1))
    with pytest.raises(VitbenchError, match="no scaled_dot_product_attention call"):
        extract_attention(convnet, torch.randn(1, 3, 8, 8), "tiny_convnet")


# -- softmax ---------------------------------------------------------------------------------


class HandAttention(nn.Module):
    """Attention as hand-written ViTs write it: an ``nn.Softmax`` child and a ``heads`` count."""

    def __init__(self, dim=8, heads=2) -> None:
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attend = nn.Softmax(dim=-1)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x):
        q, k, v = self.to_qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)
        attn = self.attend(q @ k.transpose(-1, -2) * q.shape[-1] ** -0.5)
        return self.to_out((attn @ v).transpose(1, 2).flatten(2))


def test_a_hand_written_softmax_is_read_as_it_is_computed():
    model = nn.Sequential(HandAttention(), nn.GELU(), HandAttention()).eval()
    inputs = []
    model[0].register_forward_pre_hook(lambda m, a: inputs.append(a[0]))
    x = torch.randn(3, 5, 8)
    before, out, layers, maps = read(model, x)
    assert torch.equal(out, before)
    assert [(layer.name, layer.reader) for layer in layers] == [("0", "softmax"), ("2", "softmax")]
    w = model[0].to_qkv.weight
    q = (inputs[-1] @ w[:8].T).unflatten(-1, (2, 4)).transpose(1, 2)
    k = (inputs[-1] @ w[8:16].T).unflatten(-1, (2, 4)).transpose(1, 2)
    explicit = torch.softmax(q @ k.transpose(-1, -2) / 2.0, dim=-1)
    assert torch.allclose(maps[0], explicit.detach(), atol=1e-6)


def test_levit_weights_equal_timms_own_extractor_and_the_output_is_untouched():
    model = timm.create_model("levit_128s", img_size=64).eval()
    x = torch.randn(2, 3, 64, 64)
    before, out, layers, maps = read(model, x)
    assert torch.equal(out, before)
    truth = AttentionExtract(model, ["*attn*.softmax"])(x)  # timm's fx nodes '...softmax'

    assert [f"{layer.name}.softmax" for layer in layers] == list(truth)
    assert {layer.reader for layer in layers} == {"softmax"}
    for w, t in zip(maps, truth.values(), strict=True):
        assert torch.allclose(w, t, atol=1e-6)
    downsample = [m for layer, m in zip(layers, maps, strict=True) if "downsample" in layer.name]
    assert downsample[0].shape == (2, 8, 4, 16)  # queries on the stride-2 grid, keys on 4 x 4


def test_torchvisions_swin_is_read_one_window_per_row():
    from torchvision.models.swin_transformer import SwinTransformer

    model = SwinTransformer([4, 4], 16, [2, 1], [1, 2], [4, 4]).eval()  # 8 x 8 cells, 4 windows
    before, out, layers, maps = read(model, torch.randn(2, 3, 32, 32))
    assert torch.equal(out, before)
    assert [(x.name, x.reader) for x in layers] == [
        ("features.1.0.attn", "softmax"),
        ("features.1.1.attn", "softmax"),
        ("features.3.0.attn", "softmax"),
    ]
    assert [m.shape for m in maps] == [(8, 1, 16, 16)] * 2 + [(2, 2, 16, 16)]
    assert torch.allclose(maps[1].sum(-1), torch.ones(()), atol=1e-5)


def test_torchvisions_vit_is_read_through_its_multihead_attention():
    model = torchvision.models.VisionTransformer(32, 16, 2, 2, 16, 32).eval()
    before, out, layers, maps = read(model, torch.randn(2, 3, 32, 32))
    assert torch.equal(out, before)
    assert [(x.name, x.reader) for x in layers] == [
        ("encoder.layers.encoder_layer_0.self_attention", "mha"),
        ("encoder.layers.encoder_layer_1.self_attention", "mha"),
    ]
    assert [m.shape for m in maps] == [(2, 2, 5, 5)] * 2  # class token + 2 x 2 patches


# -- timm's windowed families ----------------------------------------------------------------


def test_twins_windows_are_batch_rows_batch_major():
    model = timm.create_model(
        "twins_svt_small", img_size=64, depths=(2, 1, 1, 1), embed_dims=(16, 32, 64, 128),
        num_heads=(1, 2, 4, 8),
    ).eval()  # fmt: skip
    x = torch.randn(2, 3, 64, 64)
    _, maps = extract_attention(model, x)
    _, first = extract_attention(model, x[:1])
    # stage 1: 16 x 16 cells padded to 21 x 21, 3 x 3 windows of 7 x 7 per image; then global
    # attention to keys reduced 8 x 8 (2 x 2 keys)
    assert [m.shape for m in maps[:2]] == [(18, 1, 49, 49), (2, 1, 256, 4)]
    assert torch.allclose(maps[0][:9], first[0], atol=1e-6)  # the first image's windows first
    assert torch.allclose(maps[0].sum(-1), torch.ones(()), atol=1e-5)


def test_maxvit_block_and_grid_attention_are_read_and_restored():
    model = timm.create_model(
        "maxvit_tiny_tf_224", depths=(1, 1, 1, 1), embed_dim=(32, 32, 32, 32), stem_width=(8, 8)
    ).eval()
    set_fused_attn(model, True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        before = model(x)
    out, maps = extract_attention(model, x)
    assert torch.allclose(out, before, atol=1e-5)  # AttentionCl's own explicit path
    assert set_fused_attn(model, None) is True
    # 56 x 56 cells: 8 x 8 windows of 7 x 7 (block), or 7 x 7 grid of stride 8 (grid)
    assert [m.shape for m in maps[:2]] == [(64, 1, 49, 49)] * 2
    set_fused_attn(model, False)
    truth = AttentionExtract(model, method="hook")(x)  # timm's: '*attn_drop' with fused off
    assert list(truth)[:2] == ["stages.0.blocks.0.attn_block.attn.attn_drop"] + [
        "stages.0.blocks.0.attn_grid.attn.attn_drop"
    ]
    for w, t in zip(maps, truth.values(), strict=True):
        assert torch.allclose(w, t, atol=1e-6)


def test_stats_refuse_weights_that_are_not_four_dimensional():
    stats = LayerStats(AttentionLayer(0, "blocks.0.attn", nn.Identity(), 2, "unfused"), None, 10.0)
    with pytest.raises(VitbenchError, match=r"expected \(batch rows, heads, queries, keys\)"):
        stats.add(torch.rand(1, 2, 2, 3, 3))
