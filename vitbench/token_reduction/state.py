"""What the blocks of a reduced model hand each other within a forward, and the two steps every
reducing block takes around its attention (whatever the model family).

Slot l of the state describes the tokens entering block l (slot ``depth`` those leaving the
last). Block 0 starts each forward afresh and every block reads the slot the block before it
wrote, so a forward through part of the model (``forward_features``) and activation
checkpointing's recompute see the tokens they saw the first time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from vitbench.token_reduction.plan import BlockPlan
from vitbench.token_reduction.prune import prune_tokens
from vitbench.token_reduction.tome import merge_tokens


@dataclass
class TokenState:
    """Token sizes and, when ``trace_source`` is set, sources, per block slot."""

    depth: int
    trace_source: bool = False
    #: (B, N_l, 1) original tokens each token holds; None: one each (nothing merged yet)
    sizes: list[Tensor | None] = field(init=False)
    #: (B, N_l, N_0), 1 where token i holds original token j; None unless traced
    sources: list[Tensor | None] = field(init=False)

    def __post_init__(self) -> None:
        self.sizes = [None] * (self.depth + 1)
        self.sources = [None] * (self.depth + 1)


def attention_bias(x: Tensor, plan: BlockPlan, state: TokenState) -> Tensor | None:
    """Start block ``plan.index`` on x (B, N, C): proportional attention's bias, the log of each
    key token's size, (B, 1, 1, N) to add to the logits; None before anything is merged."""
    if plan.index == 0:  # sizes[0] stays None: every token is itself
        state.sources[0] = _identity(x) if state.trace_source else None
    size = state.sizes[plan.index]
    if not plan.proportional or size is None:
        return None
    return size.log()[:, None, None, :, 0]


def _identity(x: Tensor) -> Tensor:
    """Each token its own source: (B, N, N)."""
    b, n, _ = x.shape
    return torch.eye(n, dtype=x.dtype, device=x.device).expand(b, n, n)


def reduce_tokens(
    x: Tensor, keys: Tensor, class_attn: Tensor | None, plan: BlockPlan, state: TokenState
) -> Tensor:
    """After attention: merge or prune x (B, N, C) as the block's plan says; record sizes and
    sources for the next block. keys (B, heads, N, d); class_attn (B, heads, N) when pruning."""
    i = plan.index
    size, source = state.sizes[i], state.sources[i]
    if plan.merge_r:
        x, size, source = merge_tokens(x, keys, plan.merge_r, plan.prefix, size, source)
    elif plan.prune_keep is not None:
        x, source = prune_tokens(x, class_attn, plan.prune_keep, plan.prefix, source)
    state.sizes[i + 1], state.sources[i + 1] = size, source
    return x
