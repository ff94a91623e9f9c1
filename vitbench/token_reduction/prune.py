"""Token pruning (EViT, Liang et al. 2022): keep the tokens the class token attends to most.

In a pruning block, after attention, the non-prefix tokens are ranked by the class token's
attention to them, averaged over heads; the top k = ceil(keep_rate x non-prefix tokens) are
kept (in that order) and the rest fused into one token, sum_i a_i x_i with a_i that
attention (EViT's equation and code: the weights are the class token's softmax row, not
renormalised over the fused tokens). The prefix tokens stay in front.
"""

from __future__ import annotations

import torch
from torch import Tensor

from vitbench.token_reduction.plan import kept


def class_attention(q: Tensor, k: Tensor) -> Tensor:
    """The class token's attention row alone, for fused attention that keeps no map:
    q, k (B, heads, N, d) -> (B, heads, N); N x d multiply-adds a head, not the map's N x N x d."""
    scores = (q[:, :, :1] * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)  # (B, heads, 1, N)
    return scores.softmax(dim=-1)[:, :, 0]


def _keep_and_fuse(
    t: Tensor, prefix: int, top: Tensor, rest: Tensor, weights: Tensor | None
) -> Tensor:
    """t (B, N, C) -> (B, prefix + k + 1, C): the prefix, the ``top`` (B, k) non-prefix tokens,
    then the ``rest`` (B, N - prefix - k) summed, each times its weight (B, N - prefix - k)."""
    body, c = t[:, prefix:], t.shape[-1]
    chosen = body.gather(1, top.unsqueeze(-1).expand(-1, -1, c))
    others = body.gather(1, rest.unsqueeze(-1).expand(-1, -1, c))
    if weights is not None:
        others = others * weights.unsqueeze(-1)
    return torch.cat([t[:, :prefix], chosen, others.sum(1, keepdim=True)], dim=1)


def prune_tokens(
    x: Tensor, class_attn: Tensor, keep: float, prefix: int, source: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """One block's pruning: x (B, N, C), class_attn (B, heads, N) the class token's attention
    -> x (B, prefix + k + 1, C) and, when traced, sources (B, prefix + k + 1, N_0); unchanged
    when every token is kept."""
    tokens = x.shape[1]
    k = kept(tokens, prefix, keep)
    if k >= tokens - prefix:
        return x, source
    score = class_attn.mean(1)[:, prefix:]  # (B, N - prefix) averaged over heads
    order = score.argsort(dim=1, descending=True, stable=True)
    top, rest = order[:, :k], order[:, k:]
    x = _keep_and_fuse(x, prefix, top, rest, score.gather(1, rest))
    return x, None if source is None else _keep_and_fuse(source, prefix, top, rest, None)
