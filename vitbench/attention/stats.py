"""Running per-head sums of one layer's attention metrics, so that memory stays bounded.

Each batch of weights (B, H, Nq, Nk) is reduced to a few (H,) sums at once and dropped; the
means come out at the end. Every image contributes the same number of rows, so means over all
rows are means over queries averaged over images.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from vitbench.attention.distance import query_distances
from vitbench.attention.entropy import (
    attention_entropy,
    attention_to,
    rows_are_distributions,
)
from vitbench.attention.extract import AttentionLayer
from vitbench.attention.geometry import TokenLayout
from vitbench.errors import VitbenchError

#: bins of the attention-by-distance profile, over [0, image diagonal]
DISTANCE_BINS = 8


@dataclass
class LayerStats:
    """Per-head running sums for one attention layer."""

    layer: AttentionLayer
    layout: TokenLayout | None
    image_diagonal_px: float
    renormalise: bool = False
    rows: int = 0  # query rows seen (batch rows x queries)
    patch_rows: int = 0  # patch query rows seen (prefix queries dropped)
    n_queries: int = 0
    n_keys: int = 0
    distributions: bool = True  # every row seen was non-negative and summed to one
    sums: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (H,) or (H, bins)
    _distances: torch.Tensor | None = None
    _bins: torch.Tensor | None = None  # (Nq', Nk', bins) one-hot distance bin of each pair

    def _add(self, name: str, value: torch.Tensor) -> None:
        value = value.double()
        self.sums[name] = self.sums[name] + value if name in self.sums else value

    def add(self, weights: torch.Tensor, layout: TokenLayout | None = None) -> None:
        """Fold in one batch of weights, (B, H, Nq, Nk): B batch rows (images, or windows).

        ``layout``: this batch's, when its tokens sit apart in every batch (merged tokens:
        centres per batch row); else the layer's.
        """
        if weights.ndim != 4:
            raise VitbenchError(
                f"attention weights of {self.layer.name} have shape {tuple(weights.shape)}; "
                "expected (batch rows, heads, queries, keys)"
            )
        b, _h, nq, nk = weights.shape
        self.n_queries, self.n_keys = nq, nk
        self.rows += b * nq
        self.distributions &= rows_are_distributions(weights)
        ent = attention_entropy(weights)  # (B, H, Nq)
        self._add("entropy", ent.sum(dim=(0, 2)))
        self._add("row_sum", weights.sum(dim=-1).sum(dim=(0, 2)))
        lay = layout or self.layout
        if lay is None:
            return
        if lay.cls_key is not None:
            self._add("cls_attention", attention_to(weights, lay.cls_key).sum(dim=(0, 2)))
        if lay.self_key is not None:
            idx = torch.as_tensor(lay.self_key, device=weights.device)
            self._add("self_attention", attention_to(weights, idx).sum(dim=(0, 2)))
        if lay.query_yx is None:
            return
        distances, bins = self._distances_and_bins(lay, weights.device)
        d = query_distances(
            weights, distances, lay.n_prefix_q, lay.n_prefix_k, self.renormalise
        )  # (B, H, Nq')
        self.patch_rows += d.shape[0] * d.shape[2]
        self._add("distance", d.sum(dim=(0, 2)))
        patch_w = weights[:, :, lay.n_prefix_q :, lay.n_prefix_k :]
        pattern = "bhqk,bqkn->hn" if lay.per_row else "bhqk,qkn->hn"
        self._add("distance_profile", torch.einsum(pattern, patch_w, bins))
        prefix_w = weights[:, :, lay.n_prefix_q :, : lay.n_prefix_k].sum(dim=-1)
        self._add("prefix_attention", prefix_w.sum(dim=(0, 2)))

    def _distances_and_bins(
        self, lay: TokenLayout, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Distances in px between patch queries and keys, ([B, 1,] Nq', Nk'), and the one-hot
        distance bin of each pair, ([B,] Nq', Nk', bins); kept for a layout of fixed centres."""
        if not lay.per_row and self._distances is not None:
            return self._distances, self._bins
        distances = lay.distances().to(device)
        edges = distances / self.image_diagonal_px * DISTANCE_BINS
        which = edges.long().clamp_(0, DISTANCE_BINS - 1)
        bins = torch.nn.functional.one_hot(which, DISTANCE_BINS).float()
        if lay.per_row:  # (B, Nq', Nk') -> (B, 1, Nq', Nk'): one per batch row, every head
            return distances[:, None], bins
        self._distances, self._bins = distances, bins
        return distances, bins

    def _mean(self, name: str, count: int) -> np.ndarray:
        heads = self.layer.num_heads
        if name not in self.sums or count == 0:
            return np.full(heads, np.nan)
        return (self.sums[name] / count).cpu().numpy()

    def head_records(self) -> list[dict]:
        """One record per head: mean distance, entropy and where the attention goes."""
        lay = self.layout
        dist = self._mean("distance", self.patch_rows)
        ent = self._mean("entropy", self.rows)
        if not self.distributions:  # rows that are no probability distributions: no measure
            ent, dist = np.full_like(ent, np.nan), np.full_like(dist, np.nan)
        log_keys = math.log(self.n_keys) if self.n_keys > 1 else float("nan")
        cls = self._mean("cls_attention", self.rows)
        own = self._mean("self_attention", self.rows)
        row_sum = self._mean("row_sum", self.rows)
        out = []
        for h in range(self.layer.num_heads):
            out.append(
                {
                    "layer": self.layer.index,
                    "layer_name": self.layer.name,
                    "attention_kind": lay.kind if lay else "unknown",
                    "head": h,
                    "num_heads": self.layer.num_heads,
                    "n_queries": self.n_queries,
                    "n_keys": self.n_keys,
                    "n_prefix_tokens": lay.n_prefix_k if lay else None,
                    "mean_distance_px": float(dist[h]),
                    "entropy": float(ent[h]),
                    "entropy_norm": float(ent[h] / log_keys),
                    "cls_attention": float(cls[h]),
                    "self_attention": float(own[h]),
                    "row_sum": float(row_sum[h]),
                }
            )
        return out

    def distance_profile(self) -> np.ndarray:
        """(H, bins + 1): share of attention by distance bin, then to prefix tokens (NaN: none)."""
        heads = self.layer.num_heads
        if "distance_profile" not in self.sums or self.patch_rows == 0:
            return np.full((heads, DISTANCE_BINS + 1), np.nan)
        hist = (self.sums["distance_profile"] / self.patch_rows).cpu().numpy()
        prefix = (self.sums["prefix_attention"] / self.patch_rows).cpu().numpy()[:, None]
        return np.concatenate([hist, prefix], axis=1)
