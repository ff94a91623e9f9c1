"""What each head does on one sentence, from its (N, N) attention over the sentence's tokens.

Per head: the entropy of its rows (mean over queries, in nats, and over ln N), the weight a
query gives on average to ``[CLS]``, to ``[SEP]`` and to itself, the strongest token pairs
(query != key), and the matrix itself; for clustering, the share of its weight at token
distance |i - j| = 0, 1, 2 and 3 or more.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vitbench.attention.entropy import (
    attention_entropy,
    attention_to,
    normalised_entropy,
    rows_are_distributions,
)

#: token distances |i - j| of the clustering profile; the last band holds all farther keys
DISTANCE_BANDS = (0, 1, 2)
TOP_PAIRS = 5
DECIMALS = 4


def token_position(ids: list[int], token_id: int | None, last: bool = False) -> int | None:
    """Where ``token_id`` stands in ``ids`` (its first place, or its last), None if absent."""
    if token_id is None or token_id not in ids:
        return None
    return len(ids) - 1 - ids[::-1].index(token_id) if last else ids.index(token_id)


def head_measures(
    weights: torch.Tensor, tokens: list[str], cls_pos: int | None, sep_pos: int | None
) -> list[dict[str, Any]]:
    """(heads, N, N) weights of one layer on one sentence -> one dict of measures per head.

    Entropy is None when the rows are not distributions; attention to [CLS] or [SEP] is None
    when the sentence has no such token.
    """
    w = weights[None].float()  # (1, H, N, N)
    n = w.shape[-1]
    dist = rows_are_distributions(w)
    entropy = attention_entropy(w)[0].mean(-1) if dist else None  # (H,)
    entropy_norm = normalised_entropy(w)[0].mean(-1) if dist else None
    to_self = attention_to(w, torch.arange(n))[0].mean(-1)  # (H,)
    to_cls = None if cls_pos is None else attention_to(w, cls_pos)[0].mean(-1)
    to_sep = None if sep_pos is None else attention_to(w, sep_pos)[0].mean(-1)
    out = []
    for h, matrix in enumerate(w[0].cpu().numpy()):
        out.append(
            dict(
                entropy=None if entropy is None else float(entropy[h]),
                entropy_norm=None if entropy_norm is None else float(entropy_norm[h]),
                cls_attention=None if to_cls is None else float(to_cls[h]),
                sep_attention=None if to_sep is None else float(to_sep[h]),
                self_attention=float(to_self[h]),
                top_pairs=top_pairs(matrix, tokens),
                attention_matrix=np.round(matrix, DECIMALS).tolist(),
            )
        )
    return out


def top_pairs(matrix: np.ndarray, tokens: list[str], k: int = TOP_PAIRS) -> list[list[Any]]:
    """(N, N) -> the ``k`` strongest weights off the diagonal as [from token, to token,
    weight], strongest first (a tie keeps reading order)."""
    n = len(matrix)
    off = np.where(np.eye(n, dtype=bool), -np.inf, matrix).ravel()
    best = np.argsort(-off, kind="stable")[: min(k, n * n - n)]
    return [[tokens[i // n], tokens[i % n], round(float(off[i]), DECIMALS)] for i in best]


def distance_profile(weights: torch.Tensor) -> np.ndarray:
    """(heads, N, N) -> (heads, bands + 1): the mean share of a query's weight on keys
    |i - j| = 0, 1, 2 tokens away, and 3 or more."""
    n = weights.shape[-1]
    pos = torch.arange(n)
    gap = (pos[:, None] - pos[None, :]).abs()  # (N, N)
    w = weights.float().cpu()
    bands = [(w * (gap == d)).sum(-1).mean(-1) for d in DISTANCE_BANDS]  # each (H,)
    bands.append((w * (gap > DISTANCE_BANDS[-1])).sum(-1).mean(-1))
    return torch.stack(bands, dim=-1).numpy()
