"""Attention over a sentence as heatmaps: one panel per head, the tokens on both axes.

Drawn on matplotlib's Agg canvas (:mod:`vitbench.plotting`) into a PNG file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from vitbench.plotting import save_png, subplots

DPI = 110
COLUMNS = 4  # heads per row of panels
#: longer sentences are drawn without token labels (they would overlap)
MAX_LABELLED_TOKENS = 48


def plot_heatmaps(matrices: np.ndarray, tokens: list[str], title: str, path: Path) -> Path:
    """(heads, N, N) weights -> a grid of heatmaps, queries down (y), keys across (x, rotated),
    one colour scale shared by every head; written to ``path``. Every head has the same tokens,
    so they label the outer panels only: the first column's rows and the last row's columns."""
    heads, n = matrices.shape[0], matrices.shape[-1]
    cols = min(COLUMNS, heads)
    rows = math.ceil(heads / cols)
    panel = min(6.0, max(2.0, 0.14 * n + 0.6))  # inches
    labelled = n <= MAX_LABELLED_TOKENS
    margin = 0.6 + (0.07 * max(map(len, tokens), default=0) if labelled else 0.0)  # inches
    width, height = panel * cols + margin + 1.0, panel * rows + margin + 0.6
    fig, axes = subplots(rows, cols, figsize=(width, height))
    fig.subplots_adjust(
        left=margin / width, bottom=margin / height, right=1 - 1.0 / width, top=1 - 0.6 / height
    )
    axes = np.atleast_1d(axes).ravel()
    top = float(np.nanmax(matrices)) if matrices.size else 1.0
    image = None
    for h, ax in enumerate(axes):
        if h >= heads:
            ax.axis("off")
            continue
        image = ax.imshow(matrices[h], cmap="viridis", vmin=0.0, vmax=top)
        ax.set_title(f"head {h}", fontsize=9)
        _label(ax, tokens if labelled else [], left=h % cols == 0, bottom=h + cols >= heads)
    fig.suptitle(title)
    cax = fig.add_axes((1 - 0.8 / width, 0.2, 0.15 / width, 0.6))
    fig.colorbar(image, cax=cax, label="attention weight")
    return save_png(fig, path, DPI)


def _label(ax: Any, tokens: list[str], *, left: bool, bottom: bool) -> None:
    """Token labels on the panel's y axis (queries) when ``left``, x (keys) when ``bottom``."""
    ticks = range(len(tokens))
    ax.set_xticks(ticks, tokens if bottom else [], rotation=90, fontsize=6)
    ax.set_yticks(ticks, tokens if left else [], fontsize=6)
    if bottom:
        ax.set_xlabel("key", fontsize=8)
    if left:
        ax.set_ylabel("query", fontsize=8)
