"""Attention analysis: extraction, per-head metrics, rollout, head clusters and importance.

Names are imported on first use, so ``vitbench.attention.options`` (read by the command line
at start-up) loads without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "AttentionAnalysis": "analysis",
    "analyze_attention": "analysis",
    "AttentionExtractor": "extract",
    "AttentionLayer": "extract",
    "extract_attention": "extract",
    "find_attention_layers": "extract",
    "ImageSource": "images",
    "AttentionOptions": "options",
    "attention_rollout": "rollout",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
