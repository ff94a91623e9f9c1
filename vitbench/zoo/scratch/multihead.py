"""Multi-head attention: h heads of width d/h each attend in their own subspace, then one output
projection mixes them (Vaswani et al. 2017, section 3.2.2)."""

from __future__ import annotations

from torch import Tensor, nn

from vitbench.zoo.scratch.attention import scaled_dot_product_attention


class MultiHeadAttention(nn.Module):
    """Self-attention (``context`` None) or cross-attention over ``context``.

    MultiHead(X, C) = Concat(head_1, ..., head_h) W_O,
    head_i = Attention(X W_Q^i, C W_K^i, C W_V^i).

    Set ``keep_attn = True`` to store the softmax weights of the last forward in ``last_attn``,
    (B, heads, Nq, Nk); ``fused_attn = True`` uses PyTorch's fused kernel when weights are not kept.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        kv_dim: int | None = None,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        kv_dim = kv_dim or dim
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(kv_dim, dim, bias=qkv_bias)
        self.v = nn.Linear(kv_dim, dim, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.keep_attn = False
        self.fused_attn = False
        self.last_attn: Tensor | None = None

    def _heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)  # (B, h, N, d/h)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        mask: Tensor | None = None,
        causal: bool = False,
    ) -> Tensor:
        """x (B, Nq, C), context (B, Nk, Ckv), mask broadcasting to (B, h, Nq, Nk) -> like x."""
        context = x if context is None else context
        q, k, v = self._heads(self.q(x)), self._heads(self.k(context)), self._heads(self.v(context))
        out, weights = scaled_dot_product_attention(
            q,
            k,
            v,
            mask,
            causal=causal,
            dropout_p=self.attn_drop if self.training else 0.0,
            fused=self.fused_attn and not self.keep_attn,
        )
        self.last_attn = weights.detach() if self.keep_attn else None
        return self.proj_drop(self.proj(out.transpose(1, 2).flatten(2)))  # (B, Nq, C)
