"""Token merging (ToMe, Bolya et al. 2023): bipartite soft matching, size-weighted averages.

In every block, after attention, the tokens alternate between two sets, A (positions 0, 2,
4...) and B (1, 3, 5...). Each A token draws one edge, to the B token whose attention key is
most similar (cosine similarity of the keys averaged over heads); the r A tokens with the best
edges are merged into their partners, as averages weighted by token size (how many original
tokens each holds). Prefix tokens (class, distillation, registers) get similarity -inf, as in
the paper's code: an A prefix token's edge comes last, so it is never merged, and no A token
picks a B prefix token. Everything is shapes and index operations, so it runs on the meta
device; the matching's only multiply-adds are the similarities, |A| x |B| x head_dim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from vitbench.errors import VitbenchError
from vitbench.token_reduction.plan import mergeable


@dataclass(frozen=True)
class Matching:
    """Which A tokens join which B tokens, as indices, each (B, count, 1)."""

    kept: Tensor  # (B, |A| - r, 1) A tokens left alone, ascending: the prefix tokens first
    src: Tensor  # (B, r, 1) A tokens merged away
    dst: Tensor  # (B, r, 1) the B token each of them joins
    prefix: int


def bipartite_soft_matching(metric: Tensor, r: int, prefix: int) -> Matching:
    """The r best edges of metric (B, N, C): each A token's most similar B token (cosine)."""
    with torch.no_grad():
        metric = metric / metric.norm(dim=-1, keepdim=True)
        scores = metric[:, ::2] @ metric[:, 1::2].transpose(-1, -2)  # (B, |A|, |B|)
        scores[:, : (prefix + 1) // 2] = -math.inf  # A holds prefix positions 0, 2, ...
        scores[:, :, : prefix // 2] = -math.inf  # B holds prefix positions 1, 3, ...
        best, partner = scores.max(dim=-1)  # (B, |A|) each A token's edge
        order = best.argsort(dim=-1, descending=True, stable=True).unsqueeze(-1)  # (B, |A|, 1)
        src = order[:, :r]
        kept = order[:, r:].sort(dim=1).values
        dst = partner.unsqueeze(-1).gather(1, src)
    return Matching(kept, src, dst, prefix)


def merge(x: Tensor, m: Matching) -> Tensor:
    """x (B, N, C) -> (B, N - r, C): each merged A token added to its partner (a sum).

    Order: the prefix tokens in their places, the A tokens left, then set B.
    """
    a, b = x[:, ::2], x[:, 1::2]
    c = x.shape[-1]
    kept = a.gather(1, m.kept.expand(-1, -1, c))
    b = b.scatter_add(1, m.dst.expand(-1, -1, c), a.gather(1, m.src.expand(-1, -1, c)))
    prefix = [(kept if i % 2 == 0 else b)[:, i // 2 : i // 2 + 1] for i in range(m.prefix)]
    return torch.cat([*prefix, kept[:, (m.prefix + 1) // 2 :], b[:, m.prefix // 2 :]], dim=1)


def merge_wavg(x: Tensor, size: Tensor | None, m: Matching) -> tuple[Tensor, Tensor]:
    """Merged groups as size-weighted averages: x (B, N, C), size (B, N, 1) original tokens in
    each (None: one each) -> x (B, N - r, C), size (B, N - r, 1)."""
    size = torch.ones_like(x[..., :1]) if size is None else size
    total = merge(size, m)
    return merge(x * size, m) / total, total


def merge_tokens(
    x: Tensor, keys: Tensor, r: int, prefix: int, size: Tensor | None, source: Tensor | None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """One block's merge: x (B, N, C), keys (B, heads, N, head_dim) -> x (B, N - r, C), sizes
    (B, N - r, 1) and, when traced, sources (B, N - r, N_0)."""
    tokens = x.shape[1]
    if r > mergeable(tokens, prefix):
        raise VitbenchError(
            f"tome_r: a block would merge {r} of its {tokens - prefix} non-prefix tokens, but at "
            f"most half ({mergeable(tokens, prefix)}) can be merged"
        )
    m = bipartite_soft_matching(keys.mean(1), r, prefix)
    x, size = merge_wavg(x, size, m)
    return x, size, None if source is None else merge(source, m)
