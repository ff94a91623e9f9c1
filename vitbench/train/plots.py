"""Training figures as PNG files, drawn on matplotlib's Agg canvas (:mod:`vitbench.plotting`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vitbench.plotting import save_png, subplots

DPI = 120


def curves(epochs: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> Path:
    """Loss and accuracy per epoch, train against validation (and the EMA weights')."""
    x = [e["epoch"] for e in epochs]
    fig, (ax_loss, ax_acc) = subplots(1, 2, figsize=(10, 4))
    # the training loss is the objective (label smoothing, mixup); validation's is plain CE
    splits = [("train", "train objective"), ("val", "val cross-entropy")]
    if epochs and "ema_val_acc" in epochs[0]:  # the weights' moving average, when kept
        splits.append(("ema_val", "EMA val cross-entropy"))
    for split, what in splits:
        ax_loss.plot(x, [e[f"{split}_loss"] for e in epochs], label=what)
        ax_acc.plot(x, [100 * e[f"{split}_acc"] for e in epochs], label=split.replace("_", " "))
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return save_png(fig, path, DPI, tight=True)


def confusion(matrix: np.ndarray, classes: Sequence[str], path: Path, title: str = "") -> Path:
    """The confusion matrix as a heat map, counts written in the cells when few classes."""
    n = len(classes)
    side = min(4 + 0.4 * n, 14)
    fig, ax = subplots(figsize=(side, side))
    im = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    if n <= 20:
        ax.set_xticks(range(n), classes, rotation=90)
        ax.set_yticks(range(n), classes)
        top = matrix.max() or 1
        for (t, p), v in np.ndenumerate(matrix):
            if v:
                colour = "white" if v > top / 2 else "black"
                ax.text(p, t, str(v), ha="center", va="center", color=colour, fontsize=8)
    ax.set(xlabel="predicted class", ylabel="true class", title=title or "confusion matrix")
    return save_png(fig, path, DPI, tight=True)


def accuracy_vs_gmacs(
    cells: Sequence[Mapping[str, Any]], path: Path, label_keys: Sequence[str]
) -> Path:
    """Sweep cells: test accuracy against GMACs per image, labelled ``v1/v2/...`` by their grid
    values in the order of ``label_keys``."""
    fig, ax = subplots(figsize=(7, 5))
    pts = [c for c in cells if c.get("gmacs") is not None and c.get("test_acc") is not None]
    ax.scatter([c["gmacs"] for c in pts], [100 * c["test_acc"] for c in pts])
    for c in pts:
        label = "/".join(str(c[k]) for k in label_keys)
        ax.annotate(
            label,
            (c["gmacs"], 100 * c["test_acc"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    if pts and min(c["gmacs"] for c in pts) > 0:
        ax.set_xscale("log")
    title = f"accuracy against cost (points: {'/'.join(label_keys)})"
    ax.set(xlabel="GMACs per image", ylabel="test accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    return save_png(fig, path, DPI, tight=True)
