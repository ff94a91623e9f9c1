"""Attention analysis of images and text: extraction, per-head metrics, rollout, head clusters
and importance.

Names are imported on first use, so ``vitbench.attention.options`` (read by the command line
at start-up) loads without torch.
"""

from __future__ import annotations

from vitbench.lazy import lazy_names

_HOMES = {
    "AttentionAnalysis": "analysis",
    "analyze_attention": "analysis",
    "analyze_attention_points": "analysis",
    "AttentionExtractor": "extract",
    "AttentionLayer": "extract",
    "extract_attention": "extract",
    "find_attention_layers": "extract",
    "ImageSource": "images",
    "AttentionOptions": "options",
    "attention_rollout": "rollout",
    "TextAttentionAnalysis": "text",
    "analyze_text_attention": "text",
    "TextSource": "text_input",
}

__all__ = sorted(_HOMES)


__getattr__ = lazy_names(__name__, _HOMES)
