"""``analyze_attention``: every per-head measure of a model's attention over a set of images.

One pass over the images, batch by batch: each layer's weights are reduced to running sums the
moment they are computed (see :mod:`vitbench.attention.stats`), the rollout of the first few
images is folded in layer by layer, and, in the same forward, the gradient of the loss with
respect to a gate on every head is taken (Michel et al.). Masking heads one at a time, when
asked, is a second pass of (layers x heads + 1) forwards.

The phases, in order: check the options, build the model, the pass over the images
(:class:`_AttentionPass`), head importance, head clusters, then the records and notes. One
analysis is one unit of the results store: given a store, its rows go to the ``attention``
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
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from vitbench.attention.build import frozen, model_spec, refuse_for_module, seeded
from vitbench.attention.clusters import cluster_heads, head_features
from vitbench.attention.extract import AttentionExtractor, AttentionLayer
from vitbench.attention.geometry import Placement, place_merged, place_tokens
from vitbench.attention.images import (
    ImageBatch,
    ImageSource,
    count_images,
    image_batches,
    normalisation,
)
from vitbench.attention.importance import HeadGates
from vitbench.attention.importance_fields import add_importance, gate_gradients
from vitbench.attention.options import AttentionOptions, check_plots_dir
from vitbench.attention.plots import ROLLOUT, write_plots
from vitbench.attention.rollout import rollout_step
from vitbench.attention.stats import LayerStats
from vitbench.environment import environment
from vitbench.errors import VitbenchError
from vitbench.measure.train_step import is_logits
from vitbench.store import Recorder, Store
from vitbench.zoo import (
    ModelSpec,
    create_model,
    default_input_size,
    with_checkpoint_spec,
)
from vitbench.zoo.reduction import check_reductions, reduction_fields, tokens_per_layer

if TYPE_CHECKING:
    from vitbench.token_reduction import TokenReduction

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


def analyze_attention(
    model: nn.Module | str | ModelSpec,
    source: ImageSource | None = None,
    opts: AttentionOptions = AttentionOptions(),
    *,
    store: Store | None = None,
    plots_dir: str | os.PathLike | None = None,
    on_progress: OnProgress | None = None,
    model_name: str | None = None,
) -> AttentionAnalysis:
    """Analyse a model's attention heads on images (digits by default); one record per head.

    ``model``: a name (timm, alias, ``scratch_*``, ``torchvision:NAME``, a factory
    ``file.py:fn``; packages in ``imports`` are imported first), a :class:`ModelSpec` or a built
    module. A name or spec is built with the options' sizes and weights; they fill what a spec
    leaves unset, and one that contradicts it is an error. A built module keeps its weights and
    shape: ``pretrained``, ``checkpoint``, ``num_classes`` and ``model_kwargs`` are errors for
    it, while ``img_size`` (else ``input_size``, for a module that declares no size) sets the
    size its images are scaled to. Records are stamped with a
    run id and the environment. The figures are drawn into ``plots_dir``, by default
    ``<store artifacts>/plots/<run id>/`` (none without a store). With a store, the rollout
    figure and then the rows are stored (see the module's doc).
    """
    opts.validate()
    if plots_dir is not None:
        check_plots_dir(plots_dir)
    device = opts.resolved_device()
    recorder = Recorder(store, environment(device))
    source = source or ImageSource()
    run = _AttentionPass(_build(model, opts, device, model_name), opts, device)
    run.run(source, on_progress)
    records = _records(run.layers, run.stats)
    head = {(r["layer"], r["head"]): r for r in records}
    kept = run.kept if opts.mask_importance else None
    add_importance(head, run.layers, run.gate_grads, run.done, run.subject.net, kept, on_progress)
    _add_clusters(records, run)
    records = _describe(records, run, source)
    maps, pixels = run.rollout.maps(), run.rollout.pixels()
    analysis = AttentionAnalysis(
        run.subject.name, records, maps, pixels, _notes(run), recorder.run_id
    )
    return _record(analysis, recorder, plots_dir)


def analyze_attention_points(
    model: nn.Module | str | ModelSpec,
    source: ImageSource | None = None,
    opts: AttentionOptions = AttentionOptions(),
    *,
    store: Store | None = None,
    plots_dir: str | os.PathLike | None = None,
    on_progress: OnProgress | None = None,
    model_name: str | None = None,
) -> list[AttentionAnalysis]:
    """:func:`analyze_attention` once per token-reduction point of ``opts`` (the plain model,
    then each ``tome`` r, then each ``prune`` keep rate), each its own run; every point is
    checked before the first is analysed. With several points, a given ``plots_dir`` gets a
    folder per point (``plain``, ``tome_r8``, ``prune_keep0.7``)."""
    opts.validate()
    points = opts.at_points()
    _check_points(model, points, model_name)
    return [
        analyze_attention(
            model,
            source,
            point,
            store=store,
            plots_dir=_point_dir(plots_dir, point) if len(points) > 1 else plots_dir,
            on_progress=on_progress,
            model_name=model_name,
        )
        for point in points
    ]


def _check_points(
    model: nn.Module | str | ModelSpec, points: list[AttentionOptions], model_name: str | None
) -> None:
    """Each point's reduction applied on the meta device: an r too large for the tokens, or a
    family the transforms do not support, is refused before the first point is stored."""
    if isinstance(model, nn.Module):
        name = model_name or type(model).__name__
        specs = [
            ModelSpec(name, img_size=p.img_size, input_size=p.input_size, module=model,
                      reduction=p.reduction())
            for p in points
        ]  # fmt: skip
    else:
        specs = [with_checkpoint_spec(model_spec(model, p), p.checkpoint) for p in points]
    check_reductions(specs)


def _point_dir(plots_dir: str | os.PathLike | None, point: AttentionOptions) -> Path | None:
    """``plots_dir/<point>``: plain, tome_r<r> or prune_keep<keep>."""
    if plots_dir is None:
        return None
    (r,), (keep,) = point.tome, point.prune
    name = f"tome_r{r}" if r else f"prune_keep{keep}" if keep is not None else "plain"
    return Path(plots_dir) / name


# -- build ----------------------------------------------------------------------------------


@dataclass
class _Subject:
    """The model analysed: the module, its name, its input and where its weights came from."""

    net: nn.Module
    name: str
    input_size: tuple[int, int, int]  # (C, H, W) the images are scaled to
    weights: str  # random | pretrained | checkpoint | module (a built module's own)
    checkpoint: str | None = None
    reduction: TokenReduction | None = None  # token merging or pruning it runs with

    @property
    def hw(self) -> tuple[int, int]:
        return self.input_size[1], self.input_size[2]


def _build(
    model: nn.Module | str | ModelSpec,
    opts: AttentionOptions,
    device: str,
    model_name: str | None = None,
) -> _Subject:
    """The model in eval mode on ``device``, named ``model_name`` or by its spec or class.

    Which options apply to a name, a spec or a built module: see :func:`analyze_attention`.
    """
    if isinstance(model, nn.Module):
        refuse_for_module(opts)
        name = model_name or type(model).__name__
        reduction = opts.reduction()
        spec = ModelSpec(
            name,
            img_size=opts.img_size,
            input_size=opts.input_size,
            module=model,
            reduction=reduction,
        )
        size = default_input_size(model, spec)
        net = create_model(spec, device=device)  # reduced: a copy, the caller's stays plain
        return _Subject(net, name, size, "module", reduction=reduction)
    spec = model_spec(model, opts)
    with seeded(opts.seed, device):
        net = create_model(
            spec, device=device, pretrained=opts.pretrained, checkpoint=opts.checkpoint
        )
    checkpoint = None if opts.checkpoint is None else str(opts.checkpoint)
    weights = "checkpoint" if checkpoint else "pretrained" if opts.pretrained else "random"
    size = default_input_size(net, spec)
    name = model_name or spec.name
    return _Subject(net.to(device), name, size, weights, checkpoint, spec.reduction)


# -- the pass over the images ---------------------------------------------------------------


class _AttentionPass:
    """One pass over the images: per-layer sums, the rollout and the heads' gate gradients."""

    def __init__(self, subject: _Subject, opts: AttentionOptions, device: str) -> None:
        self.subject, self.opts, self.device = subject, opts, device
        self.diagonal = math.hypot(*subject.hw)  # px
        self.stats: dict[int, LayerStats] = {}  # by layer index
        self.placements: dict[int, Placement] = {}  # by layer index: token positions, or why not
        self.sources = _Sources(subject.net)
        self.batch_images = 0  # images in the batch being run
        self.rollout = _RolloutState(opts.fusion, opts.discard_ratio, opts.n_overlays)
        probe = torch.zeros(1, *subject.input_size, device=device)  # finds the call layers
        self.extractor = AttentionExtractor(subject.net, self._on_attention, subject.name, probe)
        self.layers = self.extractor.layers
        want_grad = opts.gradient_importance
        self.gates = (
            HeadGates(self.layers, requires_grad=True, model=subject.net) if want_grad else None
        )
        self.gate_grads: list[torch.Tensor] | None = None  # per layer (heads,), batches summed
        self.kept: list[tuple[torch.Tensor, torch.Tensor]] = []  # (x, labels), for masking
        self.done = 0  # images analysed
        self.labels = "dataset"  # "predicted" once a batch comes without labels

    def run(self, source: ImageSource, on_progress: OnProgress | None) -> None:
        """Every batch of ``source``, up to ``n_images``; an error when it gives none."""
        net, opts = self.subject.net, self.opts
        total = count_images(source, opts.n_images)
        mean, std = normalisation(net)
        size = self.subject.input_size
        with frozen(net), self.extractor:
            batches = image_batches(source, total, opts.batch_size, size, mean, std, opts.seed)
            for batch in batches:
                self._batch(batch)
                if on_progress:
                    on_progress(self.done, total, "attention")
        if self.done == 0:
            raise VitbenchError(f"no images to analyse from {source.describe()}")

    def _on_attention(self, layer: AttentionLayer, weights: torch.Tensor) -> None:
        """Fold one layer's (B, heads, Nq, Nk) weights into its sums and into the rollout.

        Tokens that merging or pruning made sit apart in every batch: placed batch by batch.
        """
        net, hw = self.subject.net, self.subject.hw
        sources = self.sources.entering(layer.name)
        merged = None if sources is None else place_merged(net, layer.name, hw, sources)
        if layer.index not in self.stats:
            place = merged
            if place is None:
                nq, nk = weights.shape[-2], weights.shape[-1]
                per_image = weights.shape[0] // self.batch_images  # windows or partitions
                place = place_tokens(net, layer.name, hw, nq, nk, per_image)
            self.placements[layer.index] = place
            renormalise = self.opts.renormalise
            self.stats[layer.index] = LayerStats(layer, place.layout, self.diagonal, renormalise)
        self.stats[layer.index].add(weights, None if merged is None else merged.layout)
        self.rollout.add(self.stats[layer.index], weights)

    def _batch(self, batch: ImageBatch) -> None:
        x = batch.x.to(self.device)  # (B, C, H, W)
        self.batch_images = len(x)
        self.rollout.start_batch(batch.pixels, self.done)
        gates = self.gates if self.gates is not None else nullcontext()
        with torch.set_grad_enabled(self.gates is not None), gates:
            logits = self.extractor.run(x)
        self.rollout.end_batch()
        labels = self._labels(batch.labels, logits)
        if self.gates is not None:
            self.gate_grads = gate_gradients(self.gates, logits, labels, self.gate_grads)
        if self.opts.mask_importance:
            self.kept.append((x, labels))
        self.done += len(x)

    def _labels(self, given: torch.Tensor | None, logits: Any) -> torch.Tensor | None:
        """(B,) the batch's labels, else the model's predictions; None without logits (a model
        that returns features, ``num_classes`` 0, has no loss to take importance from)."""
        if not is_logits(self.subject.net, logits):
            given = None
        elif given is None:
            self.labels = "predicted"
            given = logits.detach().argmax(-1)
        if given is None and self.opts.importance != "none":
            raise VitbenchError(
                f"head importance needs a classifier: {self.subject.name} returns no logits "
                "(use importance 'none')"
            )
        return None if given is None else given.to(self.device)


class _Sources:
    """Which original tokens each token of a reduced model holds, traced while it is analysed
    (:mod:`vitbench.token_reduction`); nothing for a plain model."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.state = getattr(net, "token_reduction_state", None)
        if self.state is not None:
            self.state.trace_source = True

    def entering(self, name: str) -> torch.Tensor | None:
        """(B, N, N_0) sources of the tokens attention layer ``name`` sees, when merging or
        pruning has changed them (None before, and for a plain model)."""
        if self.state is None:
            return None
        parts = name.split("#")[0].split(".")
        for i in range(len(parts), 0, -1):
            plan = getattr(self.net.get_submodule(".".join(parts[:i])), "token_plan", None)
            if plan is not None:
                sources = self.state.sources[plan.index]
                changed = sources is not None and sources.shape[1] != sources.shape[2]
                return sources if changed else None
        return None


# -- importance, clusters, records ----------------------------------------------------------


def _records(layers: list[AttentionLayer], stats: dict[int, LayerStats]) -> list[dict[str, Any]]:
    """One record per layer x head, in module order: the streamed measures and the reader."""
    out = []
    for layer in layers:
        for rec in stats[layer.index].head_records():
            rec["reader"] = layer.reader
            out.append(rec)
    return out


def _add_clusters(records: list[dict[str, Any]], run: _AttentionPass) -> None:
    """Cluster the heads by their metric profile and distance pattern; a 2-D projection."""
    metrics = ("entropy_norm", "cls_attention", "self_attention")
    profile = np.array(
        [[r["mean_distance_px"] / run.diagonal, *(r[m] for m in metrics)] for r in records]
    )  # (heads, 4)
    pattern = np.concatenate(
        [run.stats[layer.index].distance_profile() for layer in run.layers]
    )  # (heads, bins + 1)
    features = head_features(profile, pattern)
    clusters, xy = cluster_heads(features, run.opts.n_clusters, run.opts.projection)
    for rec, c, (px, py) in zip(records, clusters, xy, strict=True):
        rec.update(cluster=int(c), proj_x=float(px), proj_y=float(py))


def _describe(
    records: list[dict[str, Any]], run: _AttentionPass, source: ImageSource
) -> list[dict[str, Any]]:
    """The records stamped with what was analysed and how; model, layer and head lead."""
    subject, opts = run.subject, run.opts
    reduced: dict[str, Any] = {}  # the token reduction point, when the model has one
    if subject.reduction is not None:
        tokens = tokens_per_layer(subject.net, subject.reduction)
        reduced = {**reduction_fields(subject.reduction), "tokens_per_layer": tokens}
    for rec in records:
        rec.update(
            model=subject.name,
            weights=subject.weights,
            checkpoint=subject.checkpoint,
            img_size="{}x{}".format(*subject.hw),
            images=source.describe(),
            n_images=run.done,
            labels=run.labels if opts.importance != "none" else None,
            renormalised=opts.renormalise,
            rollout_fusion=opts.fusion,
            discard_ratio=opts.discard_ratio,
            device=str(run.device),
            seed=opts.seed,
            token_positions=run.placements[rec["layer"]].summary,
            **reduced,
        )
    lead = ("model", "layer", "head")
    return [
        {**{k: r[k] for k in lead}, **{k: v for k, v in r.items() if k not in lead}}
        for r in records
    ]


def _notes(run: _AttentionPass) -> list[str]:
    """What could not be measured, and why."""
    stats = list(run.stats.values())
    notes = [
        f"{s.layer.name}: no patch positions known "
        f"({run.placements[s.layer.index].reason}), distances left empty"
        for s in stats
        if s.layout is None
    ]
    notes += [
        f"{s.layer.name}: rows are not probability distributions, distance and entropy left empty"
        for s in stats
        if not s.distributions
    ]
    if run.rollout.reason:
        notes.append(f"no rollout: {run.rollout.reason}")
    return notes


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


# -- rollout --------------------------------------------------------------------------------


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
        if self._joint is not None and self._joint.shape[-1] != weights.shape[-1]:
            self.reason = f"the token count changes at layer {stats.layer.name}"
            return
        if lay is None or lay.kind != "self" or lay.cls_key != 0 or lay.grid is None:
            self.reason = (
                f"layer {stats.layer.name} is not self-attention over a class token and patches"
            )
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
