"""Self-supervised pre-training: masked autoencoders (MAE) whose encoder fine-tunes as a ViT.

Names are imported on first use, so the command line reads :class:`MAEConfig` without torch.
"""

from __future__ import annotations

from vitbench.lazy import lazy_names

_HOMES = {
    "MAEConfig": "config",
    "MaskedAutoencoder": "mae",
    "PretrainResult": "run",
    "pretrain_mae": "run",
}

__all__ = sorted(_HOMES)

__getattr__ = lazy_names(__name__, _HOMES)
