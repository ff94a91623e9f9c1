"""Parameter counts: exact, from the module's own tensors (works on the meta device)."""

from __future__ import annotations

from torch import nn


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; shared tensors are counted once."""
    total = trainable = 0
    for p in model.parameters():  # yields each parameter once, however many modules share it
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable
