"""Mean attention distance, as in the ViT paper (Dosovitskiy et al. 2021, appendix D.7).

For one head: for each query patch, the distances in pixels from its centre to every key
patch's centre, weighted by the attention the query pays to that key and summed over keys;
then averaged over query patches, then over images. Prefix tokens (class, distillation,
registers) have no position and are dropped from both axes. The authors' code
(google-research/vision_transformer issue 162) does not renormalise the rows after dropping the
class-token column, so attention paid to the class token counts as distance zero; that is the
default here, and ``renormalise=True`` rescales each row's patch weights to sum to one instead.
"""

from __future__ import annotations

import torch

from vitbench.attention.geometry import TokenLayout


def query_distances(
    weights: torch.Tensor,
    distances: torch.Tensor,
    n_prefix_q: int = 0,
    n_prefix_k: int = 0,
    renormalise: bool = False,
) -> torch.Tensor:
    """Attention-weighted distance of every patch query: (B, H, Nq, Nk) -> (B, H, Nq') px.

    ``distances`` is (Nq', Nk'): pixels between patch queries and patch keys (prefix dropped).
    """
    w = weights[:, :, n_prefix_q:, n_prefix_k:]  # (B, H, Nq', Nk')
    if renormalise:
        w = w / w.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny)
    return (w * distances.to(w)).sum(dim=-1)


def mean_attention_distance(
    weights: torch.Tensor, layout: TokenLayout, renormalise: bool = False
) -> torch.Tensor:
    """(B, H, Nq, Nk) -> (H,) mean distance in px over patch queries and batch rows.

    Every image has the same number of queries (and of windows, for Swin), so the mean over all
    rows equals the mean over queries averaged over images. NaN when no query is a patch.
    """
    d = layout.distances()
    if d is None:
        return torch.full((weights.shape[1],), float("nan"))
    per_query = query_distances(weights, d, layout.n_prefix_q, layout.n_prefix_k, renormalise)
    return per_query.mean(dim=(0, 2))
