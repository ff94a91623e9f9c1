"""Transformer blocks: a residual branch per sub-layer, normalised before (pre-norm, ViT) or
after (post-norm, the original Transformer and BERT) the residual sum.

    pre-norm:  x = x + DropPath(LayerScale(F(LN(x))))
    post-norm: x = LN(x + DropPath(LayerScale(F(x))))
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from vitbench.zoo.scratch.feedforward import FeedForward
from vitbench.zoo.scratch.multihead import MultiHeadAttention


class DropPath(nn.Module):
    """Stochastic depth: in training, drop a sample's whole residual branch with probability p and
    scale survivors by 1 / (1 - p), so the expected output is unchanged (Huang et al. 2016)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)  # one draw per sample
        return x * torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(keep) / keep


class LayerScale(nn.Module):
    """Per-channel learned scale of a residual branch, initialised small (CaiT)."""

    def __init__(self, dim: int, init_values: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


def residual(
    x: Tensor, norm: nn.Module, branch: Callable[[Tensor], Tensor], norm_first: bool
) -> Tensor:
    """One sub-layer with its residual connection, pre-norm or post-norm."""
    return x + branch(norm(x)) if norm_first else norm(x + branch(x))


def _layer_scale(dim: int, init_values: float | None) -> nn.Module:
    return LayerScale(dim, init_values) if init_values else nn.Identity()


class EncoderBlock(nn.Module):
    """Self-attention then feed-forward, each a residual sub-layer (ViT, BERT, encoder)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
        init_values: float | None = None,
        act: str = "gelu",
        norm_first: bool = True,
        norm_eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = MultiHeadAttention(dim, num_heads, qkv_bias, attn_drop, proj_drop=drop)
        self.ls1 = _layer_scale(dim, init_values)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio), act=act, drop=drop)
        self.ls2 = _layer_scale(dim, init_values)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:  # (B, N, C) -> (B, N, C)
        x = residual(
            x,
            self.norm1,
            lambda y: self.drop_path1(self.ls1(self.attn(y, mask=mask))),
            self.norm_first,
        )
        return residual(
            x, self.norm2, lambda y: self.drop_path2(self.ls2(self.mlp(y))), self.norm_first
        )


class DecoderBlock(nn.Module):
    """Masked self-attention, cross-attention over the encoder output, feed-forward."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        act: str = "relu",
        norm_first: bool = False,
        norm_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.self_attn = MultiHeadAttention(dim, num_heads, qkv_bias, attn_drop, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.cross_attn = MultiHeadAttention(dim, num_heads, qkv_bias, attn_drop, proj_drop=drop)
        self.norm3 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio), act=act, drop=drop)

    def forward(
        self,
        x: Tensor,
        memory: Tensor,
        mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        causal: bool = True,
    ) -> Tensor:
        """x (B, T, C) target, memory (B, S, C) encoder output -> (B, T, C)."""
        x = residual(
            x, self.norm1, lambda y: self.self_attn(y, mask=mask, causal=causal), self.norm_first
        )
        x = residual(
            x, self.norm2, lambda y: self.cross_attn(y, memory, mask=memory_mask), self.norm_first
        )
        return residual(x, self.norm3, self.mlp, self.norm_first)
