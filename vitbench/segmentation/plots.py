"""Prediction overlays: test images with their true and predicted masks painted over them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch

from vitbench.plotting import save_png, subplots
from vitbench.segmentation import IGNORE_INDEX

DPI = 120
ALPHA = 0.55  # weight of a mask's colour over the image
MAX_LEGEND = 20  # classes named in the legend, at most


def palette(num_classes: int) -> np.ndarray:
    """``(num_classes + 1, 3)`` RGB colours in [0, 1]: grey for class 0 (background, or
    ADE20K's wall), then tab20's strong colours and its light ones but its greys (fixed random
    colours past 19 classes); the last row, black, is for ignored pixels."""
    from matplotlib import colormaps

    strong_first = [i for i in [*range(0, 20, 2), *range(1, 20, 2)] if i not in (14, 15)]
    qualitative = colormaps["tab20"](strong_first)[:, :3]
    if num_classes > len(qualitative) + 1:
        qualitative = np.random.default_rng(0).uniform(0.1, 1.0, (num_classes - 1, 3))
    colours = np.vstack([np.full((1, 3), 0.4), qualitative[: num_classes - 1]])
    return np.vstack([colours, np.zeros((1, 3))])


def paint(image: np.ndarray, mask: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` image in [0, 1] blended with the colours of ``(H, W)`` class indices."""
    index = np.where(mask == IGNORE_INDEX, len(colours) - 1, mask)
    return (1 - ALPHA) * image + ALPHA * colours[index]


def overlays(
    images: np.ndarray,  # (N, H, W, 3) in [0, 1]
    truth: np.ndarray,  # (N, H, W) class indices or IGNORE_INDEX
    pred: np.ndarray,  # (N, H, W)
    classes: Sequence[str],
    path: Path,
    title: str = "",
) -> Path:
    """One row per image: the image, its true mask and the predicted one painted over it."""
    colours = palette(len(classes))
    n = len(images)
    height = 2.4 * n + 0.6  # inches: the rows, and the legend below them
    fig, axes = subplots(n, 3, figsize=(7.5, height), squeeze=False)
    for row, (img, t, p) in enumerate(zip(images, truth, pred, strict=True)):
        panels = (img, paint(img, t, colours), paint(img, p, colours))
        for ax, shown, name in zip(axes[row], panels, ("image", "true", "predicted"), strict=True):
            ax.imshow(np.clip(shown, 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
    seen = np.unique(np.concatenate([truth.ravel(), pred.ravel()]))
    seen = [int(c) for c in seen if c != IGNORE_INDEX][:MAX_LEGEND]
    handles = [Patch(color=colours[c], label=classes[c]) for c in seen]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.5 / height, 1, 1))
    return save_png(fig, path, DPI)
