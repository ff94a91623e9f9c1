"""Multi-head attention, blocks and the encoder-decoder equal PyTorch's reference modules given
the same weights (float32, dropout 0, eval, tolerance 1e-5)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitbench.zoo.scratch.blocks import DecoderBlock, EncoderBlock
from vitbench.zoo.scratch.multihead import MultiHeadAttention
from vitbench.zoo.scratch.transformer import Decoder, Encoder

TOL = dict(atol=1e-5, rtol=1e-5)
D, H = 16, 4


@torch.no_grad()
def copy_mha(ours: MultiHeadAttention, ref: nn.MultiheadAttention) -> None:
    """nn.MultiheadAttention keeps q, k, v projections fused (in_proj) or apart (kdim != dim)."""
    if ref.in_proj_weight is not None:
        weights = ref.in_proj_weight.chunk(3)
    else:
        weights = (ref.q_proj_weight, ref.k_proj_weight, ref.v_proj_weight)
    for lin, w, b in zip((ours.q, ours.k, ours.v), weights, ref.in_proj_bias.chunk(3), strict=True):
        lin.weight.copy_(w)
        lin.bias.copy_(b)
    ours.proj.load_state_dict(ref.out_proj.state_dict())


def copy_ffn_norms(ours: nn.Module, ref: nn.Module, norms: int) -> None:
    ours.mlp.fc1.load_state_dict(ref.linear1.state_dict())
    ours.mlp.fc2.load_state_dict(ref.linear2.state_dict())
    for i in range(1, norms + 1):
        getattr(ours, f"norm{i}").load_state_dict(getattr(ref, f"norm{i}").state_dict())


@torch.no_grad()
def copy_encoder_layer(ours: EncoderBlock, ref: nn.TransformerEncoderLayer) -> None:
    copy_mha(ours.attn, ref.self_attn)
    copy_ffn_norms(ours, ref, 2)


@torch.no_grad()
def copy_decoder_layer(ours: DecoderBlock, ref: nn.TransformerDecoderLayer) -> None:
    copy_mha(ours.self_attn, ref.self_attn)
    copy_mha(ours.cross_attn, ref.multihead_attn)
    copy_ffn_norms(ours, ref, 3)


@torch.no_grad()
def randomize_norms(module: nn.Module) -> None:
    """LayerNorm starts at weight 1, bias 0; move it so a swapped norm cannot pass."""
    for m in module.modules():
        if isinstance(m, nn.LayerNorm):
            m.weight.normal_(1.0, 0.2)
            m.bias.normal_(0.0, 0.2)


def test_self_attention_equals_nn_multiheadattention() -> None:
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(D, H, batch_first=True).eval()
    ours = MultiHeadAttention(D, H).eval()
    copy_mha(ours, ref)
    ours.keep_attn = True
    x = torch.randn(2, 5, D)
    padding = torch.tensor([[False] * 5, [False, False, False, True, True]])  # True = pad
    blocked = torch.rand(5, 5) > 0.6  # True = may not attend
    blocked.fill_diagonal_(False)
    cases = [
        (dict(), None),
        (dict(key_padding_mask=padding), ~padding[:, None, None, :]),
        (dict(attn_mask=blocked), ~blocked),
        (dict(attn_mask=torch.randn(5, 5)), None),
    ]
    for ref_kwargs, our_mask in cases:
        if our_mask is None and "attn_mask" in ref_kwargs:
            our_mask = ref_kwargs["attn_mask"]  # additive float masks mean the same in both
        out_ref, w_ref = ref(x, x, x, average_attn_weights=False, **ref_kwargs)
        out = ours(x, mask=our_mask)
        assert torch.allclose(out, out_ref, **TOL)
        assert torch.allclose(ours.last_attn, w_ref, **TOL)  # (B, heads, Nq, Nk)


def test_causal_self_attention_equals_reference() -> None:
    torch.manual_seed(0)
    ref = nn.MultiheadAttention(D, H, batch_first=True).eval()
    ours = MultiHeadAttention(D, H).eval()
    copy_mha(ours, ref)
    x = torch.randn(2, 6, D)
    causal = nn.Transformer.generate_square_subsequent_mask(6)  # additive, -inf above diagonal
    out_ref, _ = ref(x, x, x, attn_mask=causal, is_causal=True)
    assert torch.allclose(ours(x, causal=True), out_ref, **TOL)


def test_cross_attention_equals_nn_multiheadattention() -> None:
    torch.manual_seed(0)
    x, memory = torch.randn(2, 3, D), torch.randn(2, 7, D)
    ref = nn.MultiheadAttention(D, H, batch_first=True).eval()
    ours = MultiHeadAttention(D, H).eval()
    copy_mha(ours, ref)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 4:] = True
    out_ref, _ = ref(x, memory, memory, key_padding_mask=padding)
    assert torch.allclose(ours(x, memory, mask=~padding[:, None, None, :]), out_ref, **TOL)
    # keys and values of another width (kdim = vdim = 10)
    ref = nn.MultiheadAttention(D, H, kdim=10, vdim=10, batch_first=True).eval()
    ours = MultiHeadAttention(D, H, kv_dim=10).eval()
    copy_mha(ours, ref)
    memory = torch.randn(2, 7, 10)
    assert torch.allclose(ours(x, memory), ref(x, memory, memory)[0], **TOL)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("act", ["relu", "gelu"])
def test_encoder_block_equals_transformer_encoder_layer(norm_first: bool, act: str) -> None:
    torch.manual_seed(0)
    ref = nn.TransformerEncoderLayer(
        D, H, 32, dropout=0.0, activation=act, batch_first=True, norm_first=norm_first
    ).eval()
    randomize_norms(ref)
    ours = EncoderBlock(D, H, mlp_ratio=2, act=act, norm_first=norm_first, norm_eps=1e-5).eval()
    copy_encoder_layer(ours, ref)
    x = torch.randn(2, 5, D)
    padding = torch.tensor([[False] * 5, [False, False, False, False, True]])
    assert torch.allclose(ours(x), ref(x), **TOL)
    out_ref = ref(x, src_key_padding_mask=padding)
    out = ours(x, mask=~padding[:, None, None, :])
    assert torch.allclose(out[~padding], out_ref[~padding], **TOL)  # PyTorch zeroes pad rows


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_equals_transformer_decoder_layer(norm_first: bool) -> None:
    torch.manual_seed(0)
    ref = nn.TransformerDecoderLayer(D, H, 32, dropout=0.0, batch_first=True, norm_first=norm_first)
    ref.eval()
    randomize_norms(ref)
    ours = DecoderBlock(D, H, mlp_ratio=2, norm_first=norm_first).eval()
    copy_decoder_layer(ours, ref)
    x, memory = torch.randn(2, 4, D), torch.randn(2, 6, D)
    causal = nn.Transformer.generate_square_subsequent_mask(4)
    out_ref = ref(x, memory, tgt_mask=causal, tgt_is_causal=True)
    assert torch.allclose(ours(x, memory), out_ref, **TOL)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_decoder_equals_nn_transformer(norm_first: bool) -> None:
    torch.manual_seed(0)
    ref = nn.Transformer(
        D, H, 2, 2, 32, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    randomize_norms(ref)
    block = dict(mlp_ratio=2, act="relu", norm_first=norm_first)
    encoder, decoder = Encoder(2, D, H, **block).eval(), Decoder(2, D, H, **block).eval()
    for ours, theirs in zip(encoder.blocks, ref.encoder.layers, strict=True):
        copy_encoder_layer(ours, theirs)
    for ours, theirs in zip(decoder.blocks, ref.decoder.layers, strict=True):
        copy_decoder_layer(ours, theirs)
    encoder.norm.load_state_dict(ref.encoder.norm.state_dict())
    decoder.norm.load_state_dict(ref.decoder.norm.state_dict())
    src, tgt = torch.randn(2, 6, D), torch.randn(2, 4, D)
    src_pad = torch.tensor([[False] * 6, [False] * 4 + [True] * 2])
    out_ref = ref(
        src,
        tgt,
        tgt_mask=nn.Transformer.generate_square_subsequent_mask(4),
        src_key_padding_mask=src_pad,
        memory_key_padding_mask=src_pad,
        tgt_is_causal=True,
    )
    keep = ~src_pad[:, None, None, :]
    out = decoder(tgt, encoder(src, mask=keep), memory_mask=keep)
    assert torch.allclose(out, out_ref, **TOL)
