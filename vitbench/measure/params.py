"""Parameter counts: exact, from the module's own tensors (works on the meta device)."""

from __future__ import annotations

from torch import nn


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; shared tensors are counted once."""
    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():  # parameters() already yields each shared tensor once
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable
