"""Figures on matplotlib's Agg canvas, and the layer x head grid of per-head records.

Figures are :class:`matplotlib.figure.Figure` objects with their own Agg canvas: no global
backend is switched and pyplot keeps no reference to them, so drawing is safe in any process
(a forked child included) and a figure is freed with its last reference.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vitbench.missing import is_missing


def subplots(
    nrows: int = 1,
    ncols: int = 1,
    *,
    figsize: tuple[float, float],
    dpi: float = 100,
    squeeze: bool = True,
) -> tuple[Figure, Any]:
    """A figure and its axes, as ``pyplot.subplots`` makes them but without pyplot."""
    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=squeeze)


def save_png(fig: Figure, path: Path, dpi: float, tight: bool = False) -> Path:
    """Write ``fig`` to ``path`` as a PNG (laid out tightly first if ``tight``)."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=dpi, format="png")
    return path


def layer_head_grid(records: Iterable[Mapping[str, Any]], key: str) -> np.ndarray:
    """``key`` of per-head records as a (layers, heads) array.

    One row per layer present (in order), one column per head index; NaN where no record has a
    value, the mean where a layer and head repeat.
    """
    cells = [(int(r["layer"]), int(r["head"]), r.get(key)) for r in records]
    row = {layer: i for i, layer in enumerate(sorted({layer for layer, _, _ in cells}))}
    total = np.zeros((len(row), 1 + max((head for _, head, _ in cells), default=-1)))
    count = np.zeros_like(total)
    for layer, head, value in cells:
        if not is_missing(value):
            total[row[layer], head] += float(value)
            count[row[layer], head] += 1
    return np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0)
