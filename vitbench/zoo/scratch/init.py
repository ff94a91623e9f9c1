"""Weight initialisation shared by the models: truncated normal (std 0.02) for every linear,
convolution and embedding weight and every learned token or position, zeros for biases."""

from __future__ import annotations

from torch import nn

from vitbench.zoo.scratch.position import LearnedPositionEmbedding, RelativePositionBias
from vitbench.zoo.scratch.tokens import PrefixTokens


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Use as ``model.apply(init_weights)``; LayerNorm and LayerScale keep their own init."""
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.Embedding)):
        nn.init.trunc_normal_(module.weight, std=std)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (LearnedPositionEmbedding, PrefixTokens, RelativePositionBias)):
        for p in module.parameters(recurse=False):
            nn.init.trunc_normal_(p, std=std)
