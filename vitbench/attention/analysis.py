"""``analyze_attention``: every per-head measure of a model's attention over a set of images.

One pass over the images, batch by batch: each layer's weights are reduced to running sums the
moment they are computed (see :mod:`vitbench.attention.stats`), the rollout of the first few
images is folded in layer by layer, and, in the same forward, the gradient of the loss with
respect to a gate on every head is taken (Michel et al.). Masking heads one at a time, when
asked, is a second pass of (layers x heads + 1) forwards.

One analysis is one unit of the results store: given a store, its rows go to the ``attention``
table in one transaction at the end, after its rollout figure (kept in the ``figures`` table
and named in every row's ``rollout_figure``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vitbench.attention.clusters import PROJECTIONS, cluster_heads, head_features
from vitbench.attention.extract import AttentionExtractor, AttentionLayer
from vitbench.attention.geometry import layout_for
from vitbench.attention.images import (
    ImageSource,
    count_images,
    image_batches,
    normalisation,
)
from vitbench.attention.importance import (
    HeadGates,
    classification_loss,
    head_mask_importance,
    normalise_per_layer,
)
from vitbench.attention.plots import ROLLOUT, write_plots
from vitbench.attention.rollout import FUSIONS, rollout_step
from vitbench.attention.stats import LayerStats
from vitbench.device import check_device
from vitbench.errors import VitbenchError
from vitbench.store import Recorder, Store, environment
from vitbench.zoo import ModelSpec, create_model, default_input_size, resolve_name

IMPORTANCE = ("gradient", "mask", "both", "none")

#: (images done, images in all, phase) -> None
OnProgress = Callable[[int, int, str], None]


@dataclass
class AttentionAnalysis:
    """Records (one per layer x head, stamped), what the plots need, and the figures drawn."""

    model: str
    records: list[dict[str, Any]]
    rollout: np.ndarray | None = None  # (K, rows, cols): class-token rollout over patches
    rollout_pixels: np.ndarray | None = None  # (K, H, W, 3) uint8: the images it belongs to
    notes: list[str] = field(default_factory=list)  # what could not be measured, and why
    run_id: str = ""
    figures: dict[str, Path] = field(default_factory=dict)  # by kind, see plots.write_plots


def _build(
    model: nn.Module | str | ModelSpec,
    device: str,
    pretrained: bool,
    checkpoint: str | os.PathLike | None,
    img_size: int | None,
    model_kwargs: dict[str, Any] | None,
) -> tuple[nn.Module, str, tuple[int, int, int]]:
    if isinstance(model, nn.Module):
        name = type(model).__name__
        return model.eval(), name, default_input_size(model, ModelSpec(name, img_size=img_size))
    spec = (
        model
        if isinstance(model, ModelSpec)
        else ModelSpec(resolve_name(model), img_size=img_size, kwargs=dict(model_kwargs or {}))
    )
    built = create_model(spec, device=device, pretrained=pretrained, checkpoint=checkpoint)
    return built, spec.name, default_input_size(built, spec)


def check_options(
    *,
    device: str = "cpu",
    fusion: str = "mean",
    discard_ratio: float = 0.0,
    importance: str = "gradient",
    projection: str = "pca",
    n_clusters: int | None = None,
    plots_dir: str | os.PathLike | None = None,
) -> None:
    """Raise :class:`VitbenchError` for options :func:`analyze_attention` cannot use."""
    check_device(device)
    if fusion not in FUSIONS:
        raise VitbenchError(f"fusion must be one of {', '.join(FUSIONS)}, got '{fusion}'")
    if importance not in IMPORTANCE:
        raise VitbenchError(f"importance must be one of {', '.join(IMPORTANCE)}")
    if not 0 <= discard_ratio < 1:
        raise VitbenchError(f"discard_ratio must be in [0, 1), got {discard_ratio}")
    if projection not in PROJECTIONS:
        choices = ", ".join(PROJECTIONS)
        raise VitbenchError(f"projection must be one of {choices}, got '{projection}'")
    if n_clusters is not None and n_clusters < 1:
        raise VitbenchError(f"n_clusters must be at least 1, got {n_clusters}")
    if plots_dir is not None:
        _check_plots_dir(Path(plots_dir))


def _check_plots_dir(path: Path) -> None:
    """Refuse a plots_dir that is, or lies under, something other than a directory."""
    existing = next(p for p in (path, *path.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is not)"
        raise VitbenchError(f"plots_dir {path} is not a directory{where}")


def analyze_attention(
    model: nn.Module | str | ModelSpec,
    source: ImageSource | None = None,
    *,
    model_name: str | None = None,
    pretrained: bool = False,
    checkpoint: str | os.PathLike | None = None,
    img_size: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
    n_images: int = 32,
    batch_size: int = 8,
    device: str = "cpu",
    renormalise: bool = False,
    fusion: str = "mean",
    discard_ratio: float = 0.0,
    importance: str = "gradient",
    projection: str = "pca",
    n_clusters: int | None = None,
    n_overlays: int = 6,
    on_progress: OnProgress | None = None,
    store: Store | None = None,
    plots_dir: str | os.PathLike | None = None,
) -> AttentionAnalysis:
    """Analyse a model's attention heads on images; one record per layer x head.

    ``model``: a name (timm, alias or ``scratch_*``), a :class:`ModelSpec`, or a built module.
    Records are stamped with a run id and the environment. The figures are drawn into
    ``plots_dir``, by default ``<store artifacts>/plots/<run id>/`` (none without a store).
    With a store, the rollout figure and then the rows are stored (see the module's doc).
    """
    check_options(
        device=device,
        fusion=fusion,
        discard_ratio=discard_ratio,
        importance=importance,
        projection=projection,
        n_clusters=n_clusters,
        plots_dir=plots_dir,
    )
    recorder = Recorder(store, environment(device))
    source = source or ImageSource()
    net, name, input_size = _build(model, device, pretrained, checkpoint, img_size, model_kwargs)
    name = model_name or name
    net = net.to(device)
    hw = (input_size[1], input_size[2])
    diagonal = math.hypot(*hw)
    total = count_images(source, n_images)
    mean, std = normalisation(net)

    stats: dict[int, LayerStats] = {}
    rollout = _RolloutState(fusion, discard_ratio, n_overlays)
    gate_grads: list[torch.Tensor] | None = None
    used_labels = "dataset"

    def on_attention(layer: AttentionLayer, weights: torch.Tensor) -> None:
        if layer.index not in stats:
            layout = layout_for(net, layer.name, hw, weights.shape[-2], weights.shape[-1])
            stats[layer.index] = LayerStats(layer, layout, diagonal, renormalise)
        stats[layer.index].add(weights)
        rollout.add(stats[layer.index], weights)

    extractor = AttentionExtractor(net, on_attention, name)
    layers = extractor.layers
    want_grad = importance in ("gradient", "both")
    gates = HeadGates(layers, requires_grad=True) if want_grad else None
    batches_for_masking: list[tuple[torch.Tensor, torch.Tensor]] = []
    done = 0
    saved_grad = [p.requires_grad for p in net.parameters()]
    try:
        for p in net.parameters():
            p.requires_grad_(False)  # only the gates need gradients
        with extractor:
            for batch in image_batches(source, total, batch_size, input_size, mean, std):
                x = batch.x.to(device)
                rollout.start_batch(batch.pixels, done)
                with (
                    torch.set_grad_enabled(want_grad),
                    gates if gates is not None else nullcontext(),
                ):
                    logits = extractor.run(x)
                rollout.end_batch()
                labels = batch.labels
                if labels is None:
                    used_labels = "predicted"
                    labels = logits.detach().argmax(-1) if _is_logits(logits) else None
                if labels is None and importance != "none":
                    raise VitbenchError(
                        f"head importance needs a classifier: {name} returns no logits "
                        "(use importance 'none')"
                    )
                labels = None if labels is None else labels.to(device)
                if gates is not None:
                    grads = torch.autograd.grad(classification_loss(logits, labels), gates.gates)
                    g = [gr.detach().abs().cpu() for gr in grads]
                    gate_grads = (
                        g
                        if gate_grads is None
                        else [a + b for a, b in zip(gate_grads, g, strict=True)]
                    )
                if importance in ("mask", "both"):
                    batches_for_masking.append((x, labels))
                done += len(x)
                if on_progress:
                    on_progress(done, total, "attention")
    finally:
        for p, flag in zip(net.parameters(), saved_grad, strict=True):
            p.requires_grad_(flag)
    if done == 0:
        raise VitbenchError(f"no images to analyse from {source.describe()}")

    records = _records(layers, stats)
    head = {(r["layer"], r["head"]): r for r in records}
    if gate_grads is not None:
        for layer, imp, raw in zip(
            layers, normalise_per_layer(gate_grads), gate_grads, strict=True
        ):
            for h in range(layer.num_heads):
                head[layer.index, h].update(
                    importance=float(imp[h]), importance_grad=float(raw[h] / done)
                )
    if importance in ("mask", "both"):
        if on_progress:
            on_progress(0, 1, "masking heads one at a time")
        d_loss, d_acc = head_mask_importance(net, layers, batches_for_masking)
        normalised = normalise_per_layer(d_loss)
        for layer, imp, dl, da in zip(layers, normalised, d_loss, d_acc, strict=True):
            for h in range(layer.num_heads):
                head[layer.index, h].update(
                    importance_mask=float(imp[h]),
                    mask_loss_delta=float(dl[h]),
                    mask_accuracy_delta=float(da[h]),
                )

    profile = np.array(
        [
            [
                r["mean_distance_px"] / diagonal,
                r["entropy_norm"],
                r["cls_attention"],
                r["self_attention"],
            ]
            for r in records
        ]
    )
    pattern = np.concatenate([stats[layer.index].distance_profile() for layer in layers])
    clusters, xy = cluster_heads(head_features(profile, pattern), n_clusters, projection)
    for rec, c, (px, py) in zip(records, clusters, xy, strict=True):
        rec.update(cluster=int(c), proj_x=float(px), proj_y=float(py))

    weights = "checkpoint" if checkpoint else "pretrained" if pretrained else "random"
    for rec in records:
        rec.update(
            model=name,
            weights=weights,
            checkpoint=str(checkpoint) if checkpoint else None,
            img_size=f"{hw[0]}x{hw[1]}",
            images=source.describe(),
            n_images=done,
            labels=used_labels if importance != "none" else None,
            renormalised=renormalise,
            rollout_fusion=fusion,
            discard_ratio=discard_ratio,
            device=str(device),
        )
    notes = [f"{n}: no patch positions known, distances left empty" for n in _unplaced(stats)]
    notes += [
        f"{s.layer.name}: rows are not probability distributions, distance and entropy left empty"
        for s in stats.values()
        if not s.distributions
    ]
    if rollout.reason:
        notes.append(f"no rollout: {rollout.reason}")
    lead = ("model", "layer", "head")
    records = [
        {**{k: r[k] for k in lead}, **{k: v for k, v in r.items() if k not in lead}}
        for r in records
    ]
    analysis = AttentionAnalysis(
        name, records, rollout.maps(), rollout.pixels(), notes, recorder.run_id
    )
    return _record(analysis, recorder, plots_dir)


def _record(
    analysis: AttentionAnalysis, recorder: Recorder, plots_dir: str | os.PathLike | None
) -> AttentionAnalysis:
    """Draw the figures, store the rollout figure, then stamp and store the rows."""
    store = recorder.store
    if plots_dir is None and store is not None:
        plots_dir = Path(store.artifacts) / "plots" / recorder.run_id
    if plots_dir is not None:
        analysis.figures = write_plots(analysis, plots_dir)
    rollout = analysis.figures.get(ROLLOUT)
    figure = recorder.write_figure(rollout.name, rollout) if rollout is not None else None
    rows = [{**r, "rollout_figure": figure} for r in analysis.records]
    analysis.records = recorder.write("attention", rows)
    return analysis


def _is_logits(out: Any) -> bool:
    return isinstance(out, torch.Tensor) and out.ndim == 2


def _records(layers: list[AttentionLayer], stats: dict[int, LayerStats]) -> list[dict[str, Any]]:
    out = []
    for layer in layers:
        for rec in stats[layer.index].head_records():
            rec["reader"] = layer.reader
            out.append(rec)
    return out


def _unplaced(stats: dict[int, LayerStats]) -> list[str]:
    return [s.layer.name for s in stats.values() if s.layout is None]


class _RolloutState:
    """Rollout of the first ``keep`` images, folded in layer by layer as the weights come."""

    def __init__(self, fusion: str, discard_ratio: float, keep: int) -> None:
        self.fusion, self.discard_ratio, self.keep = fusion, discard_ratio, keep
        self.reason: str | None = None if keep > 0 else "no overlays asked for"
        self._maps: list[np.ndarray] = []
        self._pixels: list[np.ndarray] = []
        self._joint: torch.Tensor | None = None
        self._rows = 0
        self._grid: tuple[int, int] | None = None
        self._n_prefix = 0

    def start_batch(self, pixels: np.ndarray, first_index: int) -> None:
        self._rows = max(0, min(len(pixels), self.keep - first_index))
        self._joint = None
        if self._rows and self.reason is None:
            self._pixels.append(pixels[: self._rows])

    def add(self, stats: LayerStats, weights: torch.Tensor) -> None:
        if self.reason is not None or self._rows == 0:
            return
        lay = stats.layout
        if lay is None or lay.kind != "self" or lay.cls_key != 0 or lay.grid is None:
            self.reason = (
                f"layer {stats.layer.name} is not self-attention over a class token and patches"
            )
            return
        if self._joint is not None and self._joint.shape[-1] != weights.shape[-1]:
            self.reason = f"the token count changes at layer {stats.layer.name}"
            return
        self._grid, self._n_prefix = lay.grid, lay.n_prefix_k
        w = weights[: self._rows]
        self._joint = rollout_step(self._joint, w, self.fusion, self.discard_ratio, keep_key=0)

    def end_batch(self) -> None:
        if self.reason is None and self._joint is not None and self._grid is not None:
            cls_row = self._joint[:, 0, self._n_prefix :]  # (K, patches)
            self._maps.append(cls_row.reshape(-1, *self._grid).cpu().numpy())
        self._joint = None

    def maps(self) -> np.ndarray | None:
        return np.concatenate(self._maps) if self._maps and self.reason is None else None

    def pixels(self) -> np.ndarray | None:
        return np.concatenate(self._pixels) if self._pixels and self.reason is None else None
