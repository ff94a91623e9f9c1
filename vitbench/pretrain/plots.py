"""MAE's figure: per image, the masked input the encoder saw, its reconstruction, the original."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor

from vitbench.plotting import save_png, subplots

DPI = 120
ROWS = ("masked input", "reconstruction", "original")


def to_rgb(images: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(B, C, H, W) normalised -> (B, H, W, 3) in [0, 1] (one channel repeated as grey)."""
    m = images.new_tensor(mean).view(1, -1, 1, 1)
    s = images.new_tensor(std).view(1, -1, 1, 1)
    pixels = (images.detach().cpu() * s.cpu() + m.cpu()).clamp(0, 1)
    return pixels.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy()


def reconstructions(rows: dict[str, np.ndarray], path: Path, title: str = "") -> Path:
    """A grid: one column per image, the rows of ``ROWS``, each (B, H, W, 3) in [0, 1]."""
    n = len(rows[ROWS[0]])
    fig, axes = subplots(len(ROWS), n, figsize=(1.3 * n + 1.2, 4.2), squeeze=False)
    for r, name in enumerate(ROWS):
        for c in range(n):
            ax = axes[r][c]
            ax.imshow(rows[name][c], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    return save_png(fig, path, DPI, tight=True)
