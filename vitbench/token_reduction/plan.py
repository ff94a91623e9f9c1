"""What each block does to the tokens, and how many enter each block, from the built model's
token count alone (the tokens are known before anything runs, also on the meta device).

Merging (ToMe) and pruning (EViT) both act inside a block, after attention and before the MLP:
block l's attention sees the tokens entering it, its MLP those leaving it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vitbench.errors import VitbenchError
from vitbench.token_reduction.settings import TokenReduction


@dataclass(frozen=True)
class BlockPlan:
    """One block's part: merge ``merge_r`` tokens, or prune at ``prune_keep``, or neither."""

    index: int  # 0-based block
    prefix: int  # class, distillation and register tokens: never merged or pruned
    merge_r: int = 0
    proportional: bool = False  # log token sizes added to the attention logits
    prune_keep: float | None = None  # the keep rate where this block prunes


def merge_schedule(reduction: TokenReduction, depth: int) -> list[int]:
    """r of each block: a per-block tuple as given; a constant r; or ToMe's decreasing schedule,
    linear from 2r at the first block to 0 at the last, rounded down (a single block: r)."""
    r = reduction.tome_r
    if r is None:
        return [0] * depth
    if isinstance(r, (tuple, list)):
        if len(r) != depth:
            raise VitbenchError(
                f"tome_r lists {len(r)} values, one per block, but the model has {depth} blocks"
            )
        return list(r)
    if reduction.tome_schedule == "constant" or depth == 1:
        return [r] * depth
    return [2 * r * (depth - 1 - layer) // (depth - 1) for layer in range(depth)]


def prune_blocks(reduction: TokenReduction, depth: int) -> tuple[int, ...]:
    """The blocks that prune: as given, or EViT's placement scaled to the depth.

    EViT prunes in the 4th, 7th and 10th of DeiT's 12 blocks (0-based 3, 6, 9): a quarter,
    half and three quarters of the way; for L blocks, L // 4, L // 2 and 3L // 4 (once each).
    """
    if reduction.prune_layers is None:
        return tuple(sorted({depth * quarter // 4 for quarter in (1, 2, 3)}))
    past = [b for b in reduction.prune_layers if b >= depth]
    if past:
        raise VitbenchError(
            f"prune_layers: block {past[0]} is past the model's {depth} blocks (0 to {depth - 1})"
        )
    return tuple(sorted(set(reduction.prune_layers)))


def mergeable(tokens: int, prefix: int) -> int:
    """The most tokens one block can merge: half of its non-prefix tokens, rounded down (each
    merged token of set A needs a partner in set B)."""
    return (tokens - prefix) // 2


def kept(tokens: int, prefix: int, keep: float) -> int:
    """Non-prefix tokens a pruning block keeps: ceil(keep x non-prefix tokens), as EViT."""
    return math.ceil(keep * (tokens - prefix))


def merged_counts(tokens: int, prefix: int, rs: list[int], who: str) -> list[int]:
    """Tokens entering each block when block l merges rs[l]; an r too large is an error."""
    counts = []
    for layer, r in enumerate(rs):
        counts.append(tokens)
        if r > mergeable(tokens, prefix):
            raise VitbenchError(
                f"tome_r: block {layer} of {who} would merge {r} of its {tokens - prefix} "
                f"non-prefix tokens, but at most half ({mergeable(tokens, prefix)}) can be merged"
            )
        tokens -= r
    return counts


def pruned_after(tokens: int, prefix: int, keep: float) -> int:
    """Tokens leaving a pruning block: the prefix, the kept and one fused token for the rest
    (nothing changes when every token is kept)."""
    k = kept(tokens, prefix, keep)
    return tokens if k >= tokens - prefix else prefix + k + 1


def pruned_counts(
    tokens: int, prefix: int, keep: float, blocks: tuple[int, ...], depth: int
) -> list[int]:
    """Tokens entering each of ``depth`` blocks when ``blocks`` prune at ``keep``."""
    counts = []
    for layer in range(depth):
        counts.append(tokens)
        if layer in blocks:
            tokens = pruned_after(tokens, prefix, keep)
    return counts


def plan_blocks(
    reduction: TokenReduction, depth: int, tokens: int, prefix: int, who: str
) -> tuple[list[BlockPlan], list[int]]:
    """Each block's plan and the tokens entering each block (prefix included)."""
    if reduction.merges:
        rs = merge_schedule(reduction, depth)
        plans = [BlockPlan(b, prefix, r, reduction.proportional) for b, r in enumerate(rs)]
        return plans, merged_counts(tokens, prefix, rs, who)
    if reduction.prunes:
        blocks = prune_blocks(reduction, depth)
        keep = reduction.prune_keep
        plans = [
            BlockPlan(b, prefix, prune_keep=keep if b in blocks else None) for b in range(depth)
        ]
        return plans, pruned_counts(tokens, prefix, keep, blocks, depth)
    return [BlockPlan(b, prefix) for b in range(depth)], [tokens] * depth
