"""Attention rollout (Abnar and Zuidema 2020): how attention flows from the input to the output.

Per layer the heads are fused (mean, as in the paper, or max or min), the identity is added for
the residual connection and each row is renormalised to sum to one; the layers' matrices are
multiplied from the first layer to the last: R = A_L ... A_2 A_1. Row i of R is how token i at
the output draws on the input tokens; the class token's row, over patch tokens, is the map.

The discard ratio (not in the paper; popularised by a widely copied implementation) zeroes the
lowest-weighted fraction of each fused row before the identity is added, never the class
token's column. That implementation divides by the row sums along the wrong axis
(``a / a.sum(dim=-1)`` broadcasts the sums over columns); here rows are normalised with
``keepdim=True`` and every row of the result sums to one.
"""

from __future__ import annotations

import torch

from vitbench.attention.options import FUSIONS


def fuse_heads(weights: torch.Tensor, fusion: str = "mean") -> torch.Tensor:
    """(B, H, N, N) -> (B, N, N)."""
    if fusion == "mean":
        return weights.mean(dim=1)
    if fusion == "max":
        return weights.amax(dim=1)
    if fusion == "min":
        return weights.amin(dim=1)
    raise ValueError(f"head fusion must be one of {', '.join(FUSIONS)}, got '{fusion}'")


def discard_lowest(fused: torch.Tensor, ratio: float, keep_key: int | None = 0) -> torch.Tensor:
    """Zero the lowest ``ratio`` of each row's weights, (B, N, N); ``keep_key`` is never zeroed."""
    if ratio <= 0:
        return fused
    n_keys = fused.shape[-1]
    n_drop = int(n_keys * ratio)
    if n_drop == 0:
        return fused
    ranked = fused.clone()
    if keep_key is not None:
        ranked[..., keep_key] = float("inf")  # ranks last, so it is never among the lowest
    n_drop = min(n_drop, n_keys - 1)
    lowest = ranked.topk(n_drop, dim=-1, largest=False).indices  # (B, N, n_drop)
    return fused.scatter(-1, lowest, 0.0)


def rollout_step(
    joint: torch.Tensor | None,
    weights: torch.Tensor,
    fusion: str = "mean",
    discard_ratio: float = 0.0,
    keep_key: int | None = 0,
) -> torch.Tensor:
    """Fold one more layer (B, H, N, N) into the rollout so far (B, N, N) (None: first layer)."""
    a = discard_lowest(fuse_heads(weights, fusion), discard_ratio, keep_key)
    a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
    a = a / a.sum(dim=-1, keepdim=True)  # rows sum to one
    return a if joint is None else a @ joint


def attention_rollout(
    layers: list[torch.Tensor],
    fusion: str = "mean",
    discard_ratio: float = 0.0,
    keep_key: int | None = 0,
) -> torch.Tensor:
    """Rollout through layers given first to last, each (B, H, N, N) -> (B, N, N)."""
    joint = None
    for weights in layers:
        joint = rollout_step(joint, weights, fusion, discard_ratio, keep_key)
    if joint is None:
        raise ValueError("attention rollout needs at least one layer")
    return joint
