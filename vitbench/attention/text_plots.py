"""Attention over a sentence as heatmaps: one panel per head, the tokens on both axes.

Drawn on matplotlib's Agg canvas (:mod:`vitbench.plotting`) into a PNG file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from vitbench.plotting import save_png, subplots

DPI = 110
COLUMNS = 4  # heads per row of panels
#: longer sentences are drawn without token labels (they would overlap)
MAX_LABELLED_TOKENS = 48


def plot_heatmaps(matrices: np.ndarray, tokens: list[str], title: str, path: Path) -> Path:
    """(heads, N, N) weights -> a grid of heatmaps, queries down (y), keys across (x, rotated),
    one colour scale shared by every head; written to ``path``."""
    heads, n = matrices.shape[0], matrices.shape[-1]
    cols = min(COLUMNS, heads)
    rows = math.ceil(heads / cols)
    panel = min(6.0, max(2.6, 0.16 * n + 1.0))  # inches: room for the token labels
    fig, axes = subplots(rows, cols, figsize=(panel * cols + 1.0, panel * rows + 0.6))
    axes = np.atleast_1d(axes).ravel()
    top = float(np.nanmax(matrices)) if matrices.size else 1.0
    labelled = n <= MAX_LABELLED_TOKENS
    image = None
    for h, ax in enumerate(axes):
        if h >= heads:
            ax.axis("off")
            continue
        image = ax.imshow(matrices[h], cmap="viridis", vmin=0.0, vmax=top)
        ax.set_title(f"head {h}", fontsize=9)
        ticks = range(n) if labelled else []
        ax.set_xticks(ticks, [tokens[i] for i in ticks], rotation=90, fontsize=6)
        ax.set_yticks(ticks, [tokens[i] for i in ticks], fontsize=6)
        ax.set_xlabel("key", fontsize=8)
        ax.set_ylabel("query", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    cax = fig.add_axes((0.91, 0.2, 0.012, 0.6))
    fig.colorbar(image, cax=cax, label="attention weight")
    return save_png(fig, path, DPI)
