"""The four attention figures: distance against depth, entropy heatmap, head clusters, rollout.

All drawn on matplotlib's Agg canvas (:mod:`vitbench.plotting`) into PNG files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vitbench.files import file_stem
from vitbench.missing import is_missing
from vitbench.plotting import layer_head_grid, save_png, subplots

if TYPE_CHECKING:
    from vitbench.attention.analysis import AttentionAnalysis

#: the kind of figure :func:`write_plots` names the rollout overlays
ROLLOUT = "rollout"
DPI = 110


def _column(analysis: AttentionAnalysis, key: str) -> np.ndarray:
    return np.array([np.nan if is_missing(r.get(key)) else r[key] for r in analysis.records], float)


def plot_distance_vs_depth(analysis: AttentionAnalysis, path: Path) -> Path:
    """One dot per head at its layer, as the ViT paper's attention-distance figure."""
    layer, dist, head = (_column(analysis, k) for k in ("layer", "mean_distance_px", "head"))
    fig, ax = subplots(figsize=(6, 4))
    sc = ax.scatter(layer, dist, c=head, cmap="viridis", s=18, alpha=0.8)
    ax.set_xlabel("layer (network depth)")
    ax.set_ylabel("mean attention distance (px)")
    ax.set_title(f"{analysis.model}: mean attention distance per head")
    top = np.nanmax(dist) if np.isfinite(dist).any() else 1.0
    ax.set_ylim(0, 1.08 * top)
    fig.colorbar(sc, ax=ax, label="head")
    return save_png(fig, path, DPI, tight=True)


def plot_entropy_heatmap(analysis: AttentionAnalysis, path: Path) -> Path:
    """Layers x heads, normalised entropy (1: uniform, 0: one key)."""
    grid = layer_head_grid(analysis.records, "entropy_norm")
    fig, ax = subplots(figsize=(1.2 + 0.45 * grid.shape[1], 1.2 + 0.3 * grid.shape[0]))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(f"{analysis.model}: normalised entropy")
    fig.colorbar(im, ax=ax, label="entropy / ln(keys)")
    return save_png(fig, path, DPI, tight=True)


def plot_head_clusters(analysis: AttentionAnalysis, path: Path) -> Path:
    """Heads in the 2-D projection of their features, coloured by cluster, labelled layer.head."""
    x, y, cluster = (_column(analysis, k) for k in ("proj_x", "proj_y", "cluster"))
    fig, ax = subplots(figsize=(6, 5))
    ax.scatter(x, y, c=cluster, cmap="tab10", s=30)
    if len(analysis.records) <= 200:
        for r, xi, yi in zip(analysis.records, x, y, strict=True):
            ax.annotate(f"{r['layer']}.{r['head']}", (xi, yi), fontsize=6, alpha=0.7)
    ax.set_xlabel("component 1")
    ax.set_ylabel("component 2")
    ax.set_title(f"{analysis.model}: head clusters (label: layer.head)")
    return save_png(fig, path, DPI, tight=True)


def plot_rollout_overlays(analysis: AttentionAnalysis, path: Path) -> Path | None:
    """Each image beside its class-token rollout map laid over it; None without a rollout."""
    if analysis.rollout is None or analysis.rollout_pixels is None:
        return None
    import torch
    import torch.nn.functional as F

    maps, pixels = analysis.rollout, analysis.rollout_pixels
    n = len(maps)
    fig, axes = subplots(2, n, figsize=(2.2 * n, 4.6), squeeze=False)
    for i in range(n):
        h, w = pixels[i].shape[:2]
        m = F.interpolate(torch.from_numpy(maps[i])[None, None], size=(h, w), mode="bilinear")[0, 0]
        m = (m - m.min()) / (m.max() - m.min()).clamp_min(1e-12)
        axes[0, i].imshow(pixels[i])
        axes[1, i].imshow(pixels[i])
        axes[1, i].imshow(m.numpy(), cmap="jet", alpha=0.5)
        for ax in axes[:, i]:
            ax.axis("off")
    fig.suptitle(f"{analysis.model}: attention rollout of the class token")
    return save_png(fig, path, DPI, tight=True)


def write_plots(analysis: AttentionAnalysis, directory: str | Path) -> dict[str, Path]:
    """Write the figures into ``directory`` as ``<model>_<kind>.png``; return them by kind.

    The rollout figure (kind :data:`ROLLOUT`) only when there is a rollout.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stem = file_stem(analysis.model)
    drawn = {
        "attention_distance": plot_distance_vs_depth(
            analysis, d / f"{stem}_attention_distance.png"
        ),
        "attention_entropy": plot_entropy_heatmap(analysis, d / f"{stem}_attention_entropy.png"),
        "head_clusters": plot_head_clusters(analysis, d / f"{stem}_head_clusters.png"),
        ROLLOUT: plot_rollout_overlays(analysis, d / f"{stem}_{ROLLOUT}.png"),
    }
    return {kind: path for kind, path in drawn.items() if path is not None}
