"""How focused a head is: the entropy of its attention rows, and where the mass goes.

Entropy is in nats with 0 log 0 = 0; normalised entropy divides by the log of the number of
keys, so 1 is uniform attention and 0 is attention to a single key. Rows are taken over all
keys, prefix tokens included, and for every query.
"""

from __future__ import annotations

import math

import torch


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """(B, H, Nq, Nk) -> (B, H, Nq) entropy of each row, in nats."""
    plogp = torch.where(weights > 0, weights * weights.clamp_min(1e-30).log(), 0.0)
    return -plogp.sum(dim=-1)


def normalised_entropy(weights: torch.Tensor) -> torch.Tensor:
    """(B, H, Nq, Nk) -> (B, H, Nq) entropy over ln(Nk); NaN for a single key."""
    n_keys = weights.shape[-1]
    if n_keys < 2:
        return torch.full(weights.shape[:-1], float("nan"))
    return attention_entropy(weights) / math.log(n_keys)


def rows_are_distributions(weights: torch.Tensor, tol: float = 1e-3) -> bool:
    """Whether every row is non-negative and sums to one (CaiT's talking heads break this)."""
    return bool(weights.min() >= -tol and (weights.sum(dim=-1) - 1).abs().max() <= tol)


def attention_to(weights: torch.Tensor, key_index: torch.Tensor | int) -> torch.Tensor:
    """(B, H, Nq, Nk) -> (B, H, Nq) weight each query gives to one key.

    ``key_index``: one key for every query (an int, e.g. the class token), or a (Nq,) tensor of
    keys, one per query (e.g. each query's own token, for attention to self).
    """
    if isinstance(key_index, int):
        return weights[..., key_index]
    idx = key_index.to(weights.device).view(1, 1, -1, 1).expand(*weights.shape[:3], 1)
    return weights.gather(-1, idx).squeeze(-1)
