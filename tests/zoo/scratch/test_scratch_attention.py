"""Scaled dot-product attention against a worked example and PyTorch's kernel; RNN attention."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vitbench.zoo.scratch.attention import (
    AdditiveAttention,
    LuongAttention,
    causal_mask,
    scaled_dot_product_attention,
)

TOL = dict(atol=1e-5, rtol=1e-5)


def test_lecture_worked_example() -> None:
    # Q = K = I (2x2), V = [[1, 2], [3, 4]]: row one is softmax([1, 0] / sqrt(2))
    q = k = torch.eye(2)
    v = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    context, weights = scaled_dot_product_attention(q, k, v)
    expected_w = torch.tensor([[0.6698, 0.3302], [0.3302, 0.6698]])
    expected_c = torch.tensor([[1.6605, 2.6605], [2.3395, 3.3395]])
    assert torch.allclose(weights.round(decimals=4), expected_w, atol=0)
    assert torch.allclose(context.round(decimals=4), expected_c, atol=0)
    assert math.isclose(weights[0, 0].item(), 1 / (1 + math.exp(-1 / math.sqrt(2))), rel_tol=1e-6)


def _qkv(nq: int = 5, nk: int = 7, d: int = 8) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    return torch.randn(2, 3, nq, d), torch.randn(2, 3, nk, d), torch.randn(2, 3, nk, 4)


def test_matches_pytorch_kernel_with_masks() -> None:
    q, k, v = _qkv()
    keep = torch.rand(2, 1, 5, 7) > 0.3
    keep[..., 0] = True  # every query sees at least one key
    additive = torch.randn(2, 3, 5, 7)
    for mask in (None, keep, additive):
        ours, _ = scaled_dot_product_attention(q, k, v, mask)
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        assert torch.allclose(ours, ref, **TOL)
        fused, none = scaled_dot_product_attention(q, k, v, mask, fused=True)
        assert none is None and torch.allclose(fused, ref, **TOL)


def test_bool_mask_equals_additive_minus_infinity() -> None:
    q, k, v = _qkv()
    keep = torch.rand(5, 7) > 0.5
    keep[:, 0] = True
    additive = torch.zeros(5, 7).masked_fill(~keep, float("-inf"))
    out_b, w_b = scaled_dot_product_attention(q, k, v, keep)
    out_a, w_a = scaled_dot_product_attention(q, k, v, additive)
    assert torch.allclose(out_b, out_a, **TOL) and torch.allclose(w_b, w_a, **TOL)
    assert (w_b[..., ~keep] == 0).all()


def test_causal_masking_equals_reference() -> None:
    q, k, v = _qkv(nq=6, nk=6)
    ours, weights = scaled_dot_product_attention(q, k, v, causal=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    assert torch.allclose(ours, ref, **TOL)
    assert (weights.triu(diagonal=1) == 0).all()
    # query i is the attention of q_i over the prefix k_0..k_i, computed one row at a time
    for i in range(6):
        row, _ = scaled_dot_product_attention(
            q[..., i : i + 1, :], k[..., : i + 1, :], v[..., : i + 1, :]
        )
        assert torch.allclose(ours[..., i : i + 1, :], row, **TOL)
    # causal combined with an additive mask
    bias = torch.randn(6, 6)
    merged = bias.masked_fill(~causal_mask(6, 6), float("-inf"))
    ours, _ = scaled_dot_product_attention(q, k, v, bias, causal=True)
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=merged), **TOL)


def test_limiting_cases_uniform_and_single_token() -> None:
    v = torch.randn(1, 4, 3)
    out, w = scaled_dot_product_attention(torch.zeros(1, 2, 5), torch.zeros(1, 4, 5), v)
    assert torch.allclose(w, torch.full((1, 2, 4), 0.25)) and torch.allclose(
        out[0, 0], v[0].mean(0)
    )
    out, w = scaled_dot_product_attention(torch.randn(1, 1, 5), torch.randn(1, 1, 5), v[:, :1])
    assert torch.allclose(w, torch.ones(1, 1, 1)) and torch.allclose(out, v[:, :1])


def test_bahdanau_additive_attention() -> None:
    torch.manual_seed(0)
    attn = AdditiveAttention(query_dim=6, key_dim=4, hidden_dim=5)
    s, h = torch.randn(2, 6), torch.randn(2, 3, 4)
    keep = torch.tensor([[True, True, False], [True, True, True]])
    context, weights = attn(s, h, keep)
    # e_j = v^T tanh(W_s s + W_h h_j), written out one (sample, position) at a time
    for b in range(2):
        e = torch.stack(
            [attn.v(torch.tanh(attn.w_query(s[b]) + attn.w_key(h[b, j]))) for j in range(3)]
        )
        e = e.squeeze(-1).masked_fill(~keep[b], float("-inf"))
        a = e.softmax(0)
        assert torch.allclose(weights[b], a, **TOL)
        assert torch.allclose(context[b], (a[:, None] * h[b]).sum(0), **TOL)
    assert weights[0, 2] == 0


def test_luong_dot_and_general() -> None:
    torch.manual_seed(0)
    s, h = torch.randn(2, 4), torch.randn(2, 3, 4)
    context, weights = LuongAttention(4, "dot")(s, h)
    ref_w = torch.einsum("bd,bnd->bn", s, h).softmax(-1)
    assert torch.allclose(weights, ref_w, **TOL)
    assert torch.allclose(context, torch.einsum("bn,bnd->bd", ref_w, h), **TOL)
    general = LuongAttention(4, "general")
    ref_w = torch.einsum("bd,de,bne->bn", s, general.w.weight, h).softmax(-1)
    assert torch.allclose(general(s, h)[1], ref_w, **TOL)
    with torch.no_grad():
        general.w.weight.copy_(torch.eye(4))
    assert torch.allclose(general(s, h)[0], context, **TOL)  # W = I is the dot score
    with pytest.raises(ValueError):
        LuongAttention(4, "concat")
