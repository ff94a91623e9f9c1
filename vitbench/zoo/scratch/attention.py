"""Attention as a weighted average: scaled dot-product, and the additive / multiplicative scores
of RNN encoder-decoders (Bahdanau et al. 2015; Luong et al. 2015).

Mask convention (the same as ``torch.nn.functional.scaled_dot_product_attention``): a boolean
mask is True where a query may attend to a key; a float mask is added to the scores (0 keeps,
``-inf`` removes, anything else biases). Masks broadcast to the scores, (..., Nq, Nk).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def causal_mask(num_queries: int, num_keys: int, device: torch.device | None = None) -> Tensor:
    """(Nq, Nk) boolean mask, True on and below the diagonal: query i sees keys j <= i."""
    return torch.ones(num_queries, num_keys, dtype=torch.bool, device=device).tril()


def merge_masks(mask: Tensor | None, keep: Tensor) -> Tensor:
    """Combine a boolean or additive ``mask`` with a boolean ``keep`` mask (e.g. causal)."""
    if mask is None:
        return keep
    if mask.dtype == torch.bool:
        return mask & keep
    return mask.masked_fill(~keep, float("-inf"))


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    *,
    causal: bool = False,
    dropout_p: float = 0.0,
    fused: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """softmax(q k^T / sqrt(d) + mask) v, and the softmax weights.

    q: (..., Nq, d), k: (..., Nk, d), v: (..., Nk, dv) -> context (..., Nq, dv),
    weights (..., Nq, Nk). ``fused`` calls PyTorch's kernel instead (faster, no weights: None).
    ``dropout_p`` drops attention weights; pass 0 in eval.
    """
    if causal:
        mask = merge_masks(mask, causal_mask(q.shape[-2], k.shape[-2], device=q.device))
    if fused:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p), None
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Nq, Nk)
    if mask is not None:
        scores = (
            scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
        )
    weights = scores.softmax(dim=-1)
    return F.dropout(weights, dropout_p) @ v, weights


def _attend(scores: Tensor, values: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """scores (B, N), values (B, N, D), mask (B, N) True = keep -> (B, D), weights (B, N)."""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    return (weights.unsqueeze(1) @ values).squeeze(1), weights


class AdditiveAttention(nn.Module):
    """Bahdanau attention: e_j = v^T tanh(W_s s + W_h h_j), a = softmax(e), c = sum_j a_j h_j.

    ``s`` is the decoder state (B, Ds), ``h`` the encoder states (B, N, Dh), which are also the
    values.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w_query = nn.Linear(query_dim, hidden_dim, bias=False)
        self.w_key = nn.Linear(key_dim, hidden_dim)
        self.v = nn.Linear(hidden_dim, 1, bias=False)

    def forward(
        self, query: Tensor, keys: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        # (B, 1, H) + (B, N, H) -> (B, N, H) -> (B, N)
        scores = self.v(torch.tanh(self.w_query(query).unsqueeze(1) + self.w_key(keys))).squeeze(-1)
        return _attend(scores, keys, mask)


class LuongAttention(nn.Module):
    """Luong attention: score(s, h_j) = s^T h_j ("dot") or s^T W h_j ("general")."""

    def __init__(self, dim: int, score: str = "dot") -> None:
        super().__init__()
        if score not in ("dot", "general"):
            raise ValueError(f"Luong score is 'dot' or 'general', not {score!r}")
        self.w = nn.Linear(dim, dim, bias=False) if score == "general" else nn.Identity()

    def forward(
        self, query: Tensor, keys: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        # query (B, D), keys (B, N, D) -> scores (B, N)
        scores = (self.w(keys) @ query.unsqueeze(-1)).squeeze(-1)
        return _attend(scores, keys, mask)
