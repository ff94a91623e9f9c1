"""Attention analysis: extraction, per-head metrics, rollout, head clusters and importance."""

from vitbench.attention.analysis import AttentionAnalysis, analyze_attention
from vitbench.attention.extract import (
    AttentionExtractor,
    AttentionLayer,
    extract_attention,
    find_attention_layers,
)
from vitbench.attention.images import ImageSource
from vitbench.attention.rollout import attention_rollout

__all__ = [
    "AttentionAnalysis",
    "AttentionExtractor",
    "AttentionLayer",
    "ImageSource",
    "analyze_attention",
    "attention_rollout",
    "extract_attention",
    "find_attention_layers",
]
