"""Token layouts: which tokens of an attention layer are prefix tokens and where each patch sits.

A layout says, for one attention layer, how many query and key tokens are prefix tokens (class,
distillation, registers) and gives the centre of every remaining token in input-image pixels.
Positions are in the coordinates of the image the model was fed, so one pixel means the same
thing in every family: a 16 px patch of a 224 px ViT, a 4 px cell of Swin's first stage, a
spatially reduced key of PVT-v2 that covers ``sr`` x ``sr`` cells.

Each known family has a rule (``_FAMILIES``); a model that none knows gets its positions from
the token count when its sequence is prefix tokens plus a grid of the image's aspect
(:func:`_guessed_grid`). A rule's prediction is kept only when its token counts are the
layer's; otherwise, and when no rule applies, :func:`place_tokens` says why in one line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class TokenLayout:
    """Token roles and positions of one attention layer (N counts include prefix tokens).

    kind: ``self`` (queries and keys are the same tokens), ``window`` (Swin, MaxViT blocks,
    Twins: one window per batch row), ``grid`` (MaxViT grid, MobileViT: one batch row per
    offset, its tokens spread over the map), ``reduced`` (PVT-v2, Twins: keys spatially
    reduced), ``subsampled`` (LeViT: queries are every other key), ``class`` (CaiT: the class
    token queries), ``cross`` (CrossViT: one branch's class token queries the other branch),
    ``merged`` (self-attention over tokens that merging or pruning made: they sit apart in
    every image, so the centres are given per batch row, (B, N, 2)).
    """

    kind: str
    n_prefix_q: int
    n_prefix_k: int
    query_yx: np.ndarray | None  # ([B,] Nq - n_prefix_q, 2) centres in px; None: no patch queries
    key_yx: np.ndarray  # ([B,] Nk - n_prefix_k, 2) centres in px
    self_key: np.ndarray | None  # (Nq,) the key index of each query's own token
    cls_key: int | None  # key index of the class token, None when keys hold none
    grid: tuple[int, int] | None  # (rows, cols) of the patch queries when they form a grid

    @property
    def n_queries(self) -> int:
        return self.n_prefix_q + (0 if self.query_yx is None else self.query_yx.shape[-2])

    @property
    def n_keys(self) -> int:
        return self.n_prefix_k + self.key_yx.shape[-2]

    @property
    def per_row(self) -> bool:
        """The centres are given per batch row (merged tokens)."""
        return self.key_yx.ndim == 3

    def distances(self) -> torch.Tensor | None:
        """([B,] Nq', Nk') Euclidean distances in px between patch queries and patch keys."""
        if self.query_yx is None:
            return None
        q = torch.as_tensor(self.query_yx, dtype=torch.float64)
        k = torch.as_tensor(self.key_yx, dtype=torch.float64)
        return torch.cdist(q, k).float()


@dataclass(frozen=True)
class Placement:
    """A layer's layout and the rule that gave it, or None and why no rule could."""

    layout: TokenLayout | None
    rule: str | None = None  # e.g. "Swin windows", "guessed: 1 prefix + 14 x 14 grid"
    reason: str | None = None  # why there are no positions, when layout is None

    @property
    def summary(self) -> str:
        """The rule, or ``unknown: <reason>``: the ``token_positions`` column of the records."""
        return self.rule if self.layout is not None else f"unknown: {self.reason}"


def grid_centres(rows: int, cols: int, cell_h: float, cell_w: float) -> np.ndarray:
    """(rows * cols, 2) centres (y, x) in px of a row-major grid of cells."""
    ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return np.stack([(ys.ravel() + 0.5) * cell_h, (xs.ravel() + 0.5) * cell_w], axis=1)


def _axes_centres(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """(len(ys) * len(xs), 2) row-major centres of the grid with these row and column centres."""
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([yy.ravel(), xx.ravel()], axis=1)


def _self_layout(
    kind: str, n_prefix: int, rows: int, cols: int, cell: tuple[float, float], cls: bool
) -> TokenLayout:
    yx = grid_centres(rows, cols, *cell)
    n = n_prefix + rows * cols
    return TokenLayout(
        kind, n_prefix, n_prefix, yx, yx, np.arange(n), 0 if cls else None, (rows, cols)
    )


def _stage(name: str, word: str) -> int | None:
    m = re.search(rf"(?:^|\.){word}\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def _holders(model: nn.Module, name: str) -> Iterator[nn.Module]:
    """The module ``name``, then each module that holds it, innermost first."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        yield model.get_submodule(".".join(parts[:i]))


def _holder(model: nn.Module, name: str, *attrs: str) -> nn.Module | None:
    """The innermost of ``name`` and its holders that has every one of ``attrs``."""
    return next((m for m in _holders(model, name) if all(hasattr(m, a) for a in attrs)), None)


def _reduction(model: nn.Module, name: str) -> int | None:
    """Pixels per feature cell of the stage holding ``name``, from timm's ``feature_info``: the
    entry of that module, else the one numbered as its stage (ByobNet calls the output of its
    last stage ``final_conv``, with ``stage`` one past the stage's index)."""
    infos = [i for i in getattr(model, "feature_info", None) or [] if isinstance(i, dict)]
    found = [
        (len(i["module"]), int(i["reduction"]))
        for i in infos
        if name.startswith(i.get("module", "") + ".")
    ]
    if found:
        return max(found)[1]
    stage = _stage(name, "stages")
    found = [
        int(i["reduction"]) for i in infos if stage is not None and i.get("stage") == stage + 1
    ]
    return found[0] if found else None


def place_tokens(
    model: nn.Module,
    name: str,
    image_hw: tuple[int, int],
    n_q: int,
    n_k: int,
    rows_per_image: int = 1,
) -> Placement:
    """Where the tokens of attention layer ``name`` sit for an input of ``image_hw`` px.

    ``name``: the attention module, or one of its calls (``name#k``); ``n_q``, ``n_k``: the
    layer's query and key counts; ``rows_per_image``: batch rows of its weights per image
    (windows, partitions), which only the guessed grid needs to be one.
    """
    module = name.split("#")[0]
    for label, is_family, resolve in _FAMILIES:
        if not is_family(model):
            continue
        layout = resolve(model, module, image_hw)
        if layout is None:
            return Placement(None, reason=f"the {label} rule does not cover layer {name}")
        if (layout.n_queries, layout.n_keys) != (n_q, n_k):
            return Placement(
                None,
                reason=f"{n_q} x {n_k} tokens where the {label} rule predicts "
                f"{layout.n_queries} x {layout.n_keys}",
            )
        return Placement(layout, rule=label)
    return _guessed_grid(model, image_hw, n_q, n_k, rows_per_image)


def place_merged(
    model: nn.Module, name: str, image_hw: tuple[int, int], sources: torch.Tensor
) -> Placement:
    """Where the tokens of attention layer ``name`` sit when token merging or pruning made them.

    ``sources`` (B, N, N_0): 1 where token i of a batch row holds original token j, prefix
    tokens first and holding themselves (:mod:`vitbench.token_reduction`). Each token sits at
    the mean centre of the original tokens it holds (a merged token's size-weighted mean of its
    parts' positions), per batch row; the original tokens are placed by :func:`place_tokens`.
    """
    n0 = sources.shape[-1]
    original = place_tokens(model, name, image_hw, n0, n0)
    lay = original.layout
    if lay is None or lay.kind != "self":
        why = original.reason or f"{lay.kind} attention"  # type: ignore[union-attr]
        return Placement(None, reason=f"merged tokens, and no positions for the originals ({why})")
    p = lay.n_prefix_k
    held = sources[:, p:, p:].to(torch.float64)  # (B, N - p, N_0 - p)
    yx = torch.as_tensor(lay.key_yx, dtype=torch.float64, device=held.device)
    centres = (held @ yx / held.sum(-1, keepdim=True)).cpu().numpy()  # (B, N - p, 2)
    n = sources.shape[1]
    merged = TokenLayout("merged", p, p, centres, centres, np.arange(n), lay.cls_key, None)
    return Placement(merged, rule=f"merged: mean centre of the tokens each holds ({original.rule})")


def layout_for(
    model: nn.Module, name: str, image_hw: tuple[int, int], n_q: int, n_k: int
) -> TokenLayout | None:
    """The layout of attention layer ``name`` for an input of ``image_hw`` px, or None when no
    rule places its tokens (metrics that need positions are then left empty)."""
    return place_tokens(model, name, image_hw, n_q, n_k).layout


def _is(cls_path: str) -> Callable[[nn.Module], bool]:
    """Is the model an instance of ``module.Class``? (Read from its classes' names, so that
    asking imports nothing.)"""
    return lambda model: any(
        f"{c.__module__}.{c.__qualname__}" == cls_path for c in type(model).__mro__
    )


def _holds(cls_path: str) -> Callable[[nn.Module], bool]:
    """Does the model hold a module of class ``module.Class``?"""
    is_cls = _is(cls_path)
    return lambda model: any(is_cls(m) for m in model.modules())


# -- window and partition families ----------------------------------------------------------


def _swin(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    """timm's Swin, SwinV2 and SwinV2-CR: one window of the block's map per batch row."""
    block = _holder(model, name, "input_resolution", "window_size") or _holder(
        model, name, "feat_size", "window_size"
    )
    if block is None:
        return None
    res = getattr(block, "input_resolution", None) or block.feat_size
    (fh, fw), (wh, ww) = _pair(res), _pair(block.window_size)
    cell = (image_hw[0] / fh, image_hw[1] / fw)
    return _self_layout("window", 0, wh, ww, cell, cls=False)


def _maxxvit(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    """MaxViT and CoAtNet: window partitions, grid partitions, or the whole map of a stage.

    A window is ``partition_size`` neighbouring cells; a grid partition takes the same number
    of cells spread over the map, ``feature / partition`` cells apart (timm's grid_partition).
    """
    r = _reduction(model, name)
    if r is None:
        return None
    fh, fw = math.ceil(image_hw[0] / r), math.ceil(image_hw[1] / r)  # the stage's map
    holder = _holder(model, name, "partition_size")
    if holder is None:  # CoAtNet's transformer blocks: self-attention over the whole map
        return _self_layout("self", 0, fh, fw, (r, r), cls=False)
    ph, pw = _pair(holder.partition_size)
    if getattr(holder, "partition_block", not name.endswith("attn_grid")):
        return _self_layout("window", 0, ph, pw, (r, r), cls=False)
    if fh % ph or fw % pw:
        return None
    return _self_layout("grid", 0, ph, pw, (r * fh / ph, r * fw / pw), cls=False)


def _mobilevit(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    """MobileViT: the map is cut into patches of ``patch_size`` cells; one batch row holds the
    cell at one offset of every patch, so its tokens sit one patch apart."""
    block = _holder(model, name, "patch_size", "patch_area", "transformer")
    r = _reduction(model, name)
    if block is None or r is None:
        return None
    fh, fw = math.ceil(image_hw[0] / r), math.ceil(image_hw[1] / r)
    (ph, pw) = _pair(block.patch_size)
    nh, nw = math.ceil(fh / ph), math.ceil(fw / pw)  # a map not a multiple is resized to one
    return _self_layout("grid", 0, nh, nw, (r * fh / nh, r * fw / nw), cls=False)


def _tv_swin(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    """torchvision's Swin (v1, v2): windows of ``window_size`` cells (padded, never shrunk) of a
    map the patch conv and each patch merging before the stage have strided."""
    m = re.match(r"features\.(\d+)\.\d+\.attn$", name)
    if m is None:
        return None
    sy, sx = _pair(model.features[0][0].stride)
    merges = [
        type(f).__name__.startswith("PatchMerging") for f in model.features[: int(m.group(1))]
    ]
    wh, ww = _pair(model.get_submodule(name).window_size)
    cell = (sy * 2 ** sum(merges), sx * 2 ** sum(merges))
    return _self_layout("window", 0, wh, ww, cell, cls=False)


def _tv_maxvit(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    """torchvision's MaxViT: a window is ``p`` x ``p`` neighbouring cells of the layer's
    ``grid_size`` map; a grid partition takes ``g`` x ``g`` cells ``p`` apart."""
    part = _holder(model, name, "partition_type", "grid_size", "p", "g")
    if part is None:
        return None
    fh, fw = _pair(part.grid_size)
    cell = (image_hw[0] / fh, image_hw[1] / fw)
    if part.partition_type == "window":
        return _self_layout("window", 0, part.p, part.p, cell, cls=False)
    return _self_layout("grid", 0, part.g, part.g, (cell[0] * part.p, cell[1] * part.p), cls=False)


def _twins(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    """Twins-SVT: windows of ``ws`` x ``ws`` cells (padded at the bottom and right), or all
    cells as queries with keys merged ``sr`` x ``sr`` (as PVT-v2)."""
    m = re.match(r"blocks\.(\d+)\.\d+\.attn$", name)
    if m is None:
        return None
    (h, w), (sy, sx) = _pair(image_hw), (1, 1)
    for embed in model.patch_embeds[: int(m.group(1)) + 1]:  # each stage: a strided patch conv
        ph, pw = _pair(embed.patch_size)
        h, w, sy, sx = h // ph, w // pw, sy * ph, sx * pw
    attn = model.get_submodule(name)
    if hasattr(attn, "ws"):
        return _self_layout("window", 0, attn.ws, attn.ws, (sy, sx), cls=False)
    sr = attn.sr.kernel_size[0] if getattr(attn, "sr", None) is not None else None
    return _reduced(h, w, (sy, sx), sr)


def _reduced(h: int, w: int, cell: tuple[float, float], sr: int | None) -> TokenLayout:
    """Every cell of an h x w map queries; keys are its cells merged ``sr`` x ``sr`` by a conv
    of kernel and stride ``sr`` (None: the cells themselves)."""
    queries = grid_centres(h, w, *cell)
    if sr is None:
        return TokenLayout("reduced", 0, 0, queries, queries, np.arange(h * w), None, (h, w))
    keys = grid_centres(h // sr, w // sr, cell[0] * sr, cell[1] * sr)
    return TokenLayout("reduced", 0, 0, queries, keys, None, None, (h, w))


def _levit(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    """LeViT: a strided conv stem, then stages on a grid; each later stage starts with an
    attention whose queries are every ``stride``-th key of the stage before, in both axes."""
    m = re.match(r"stages\.(\d+)\.(blocks\.\d+\.attn|downsample\.attn_downsample)$", name)
    if m is None:
        return None
    stage, down = int(m.group(1)), m.group(2).startswith("downsample")
    axes = _levit_axes(model, image_hw, stage - 1 if down else stage)
    if axes is None:
        return None
    if not down:
        yx, grid = _axes_centres(*axes), (len(axes[0]), len(axes[1]))
        return TokenLayout("self", 0, 0, yx, yx, np.arange(len(yx)), None, grid)
    step = model.get_submodule(name).stride
    rows, cols = np.arange(0, len(axes[0]), step), np.arange(0, len(axes[1]), step)
    own = (rows[:, None] * len(axes[1]) + cols[None, :]).ravel()  # each query's own key
    queries = _axes_centres(axes[0][::step], axes[1][::step])
    return TokenLayout(
        "subsampled", 0, 0, queries, _axes_centres(*axes), own, None, (len(rows), len(cols))
    )


def _levit_axes(
    model: nn.Module, image_hw: tuple[int, int], stage: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows,), (cols,) px centres of LeViT's grid at ``stage``: the stem's cells, of which
    each later stage keeps every ``stride``-th (timm's Downsample: ``x[:, ::s, ::s]``)."""
    if stage < 0:
        return None
    sy, sx = _pair(model.stem.stride)
    ys = (np.arange(image_hw[0] // sy) + 0.5) * sy
    xs = (np.arange(image_hw[1] // sx) + 0.5) * sx
    for later in model.stages[1 : stage + 1]:
        down = getattr(later.downsample, "attn_downsample", None)
        if down is not None:  # a stage without one stays on the grid before it
            ys, xs = ys[:: down.stride], xs[:: down.stride]
    return ys, xs


# -- pyramid and class-attention families ---------------------------------------------------


def _pvt(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    stage = _stage(name, "stages")
    attn = model.get_submodule(name)
    if stage is None:
        return None
    h, w = math.ceil(image_hw[0] / 4), math.ceil(image_hw[1] / 4)  # stem: 7x7 conv, stride 4
    for _ in range(stage):
        h, w = math.ceil(h / 2), math.ceil(w / 2)  # each later stage: 3x3 conv, stride 2
    cell = (image_hw[0] / h, image_hw[1] / w)
    if getattr(attn, "pool", None) is not None:  # linear attention: keys pooled to 7 x 7
        keys = _axes_centres(_pool_centres(h, 7) * cell[0], _pool_centres(w, 7) * cell[1])
        return TokenLayout("reduced", 0, 0, grid_centres(h, w, *cell), keys, None, None, (h, w))
    sr = attn.sr.kernel_size[0] if getattr(attn, "sr", None) is not None else None
    return _reduced(h, w, cell, sr)


def _pool_centres(size: int, bins: int) -> np.ndarray:
    """Centres (in cells) of adaptive average pooling bins, as torch computes their bounds."""
    j = np.arange(bins)
    start = np.floor(j * size / bins)
    end = np.ceil((j + 1) * size / bins)
    return (start + end) / 2


def _cait(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    rows, cols = _grid(model.patch_embed, image_hw)
    cell = (image_hw[0] / rows, image_hw[1] / cols)
    if name.startswith("blocks_token_only."):  # class attention: the class token queries
        keys = grid_centres(rows, cols, *cell)
        return TokenLayout("class", 1, 1, None, keys, np.array([0]), 0, None)
    return _self_layout("self", 0, rows, cols, cell, cls=False)


def _crossvit(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    m = re.match(r"blocks\.\d+\.(blocks|fusion)\.(\d+)\.", name)
    if m is None:
        return None
    branch = int(m.group(2))
    n_branches = len(model.patch_embed)
    if m.group(1) == "fusion":  # the branch's class token attends to the other branch's patches
        other = model.patch_embed[(branch + 1) % n_branches]
        rows, cols = _grid(other, other.img_size)
        keys = grid_centres(rows, cols, image_hw[0] / rows, image_hw[1] / cols)
        return TokenLayout("cross", 1, 1, None, keys, np.array([0]), 0, None)
    pe = model.patch_embed[branch]
    rows, cols = _grid(pe, pe.img_size)  # each branch sees the image rescaled to its own size
    return _self_layout("self", 1, rows, cols, (image_hw[0] / rows, image_hw[1] / cols), cls=True)


# -- plain ViTs, and any model whose sequence is prefix tokens plus a grid -------------------


def _grid(patch_embed: nn.Module, image_hw) -> tuple[int, int]:
    """(rows, cols) of the patch grid; timm's embeds (hybrid ones too) say it themselves."""
    if hasattr(patch_embed, "dynamic_feat_size"):
        return _pair(patch_embed.dynamic_feat_size(_pair(image_hw)))
    ph, pw = _pair(patch_embed.patch_size)
    h, w = _pair(image_hw)
    return h // ph, w // pw


def _stride(patch_embed: nn.Module) -> tuple[int, int]:
    """Pixels per token of a patch embed: a hybrid's backbone reduction times its patch size."""
    if hasattr(patch_embed, "feat_ratio"):
        return _pair(patch_embed.feat_ratio(as_scalar=False))
    return _pair(patch_embed.patch_size)


def _has_patch_grid(model: nn.Module) -> bool:
    pe = getattr(model, "patch_embed", None)
    return pe is not None and hasattr(pe, "patch_size") and not isinstance(pe, nn.ModuleList)


def _plain(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    """ViT, DeiT (distilled: two prefix tokens), BEiT, ViTamin, registers, our own ViTs."""
    n_prefix = getattr(model, "num_prefix_tokens", None)
    if n_prefix is None:
        n_prefix = int(getattr(model, "cls_token", None) is not None)
    holder = getattr(model, "tokens", model)  # our own ViTs keep their prefix tokens apart
    has_cls = getattr(holder, "cls_token", None) is not None  # first when present
    rows, cols = _grid(model.patch_embed, image_hw)
    return _self_layout("self", int(n_prefix), rows, cols, _stride(model.patch_embed), has_cls)


#: the most prefix tokens a guessed grid may start with (class, distillation, registers)
MAX_GUESSED_PREFIX = 8


def _declared_prefix(model: nn.Module) -> tuple[int | None, bool]:
    """(prefix tokens, has a class token) as the model declares them; None when it does not.

    timm's ``num_prefix_tokens``, else a class token (``class_token``: torchvision's ViT,
    ``cls_token``), with ``dist_token`` a second.
    """
    has_cls = any(getattr(model, a, None) is not None for a in ("class_token", "cls_token"))
    n = getattr(model, "num_prefix_tokens", None)
    if isinstance(n, int):
        return n, has_cls
    if has_cls:
        return 1 + int(getattr(model, "dist_token", None) is not None), True
    return None, False


def _grid_of(n: int, image_hw: tuple[int, int]) -> tuple[int, int] | None:
    """(rows, cols) with rows x cols = n whose cells are nearest to square on the image, when
    their sides differ by under 10 % (patches of one size), else None."""
    h, w = image_hw
    best = min(
        ((r, n // r) for r in range(1, n + 1) if n % r == 0),
        key=lambda rc: abs(math.log(h / rc[0] / (w / rc[1]))),
        default=None,
    )
    if best is None or abs(h / best[0] / (w / best[1]) - 1) >= 0.1:
        return None
    return best


def _guessed_grid(
    model: nn.Module, image_hw: tuple[int, int], n_q: int, n_k: int, rows_per_image: int
) -> Placement:
    """Prefix tokens first, then a row-major grid of patches of one size over the whole image:
    the prefix the model declares, else the fewest (up to ``MAX_GUESSED_PREFIX``) that leave
    such a grid. The first of guessed prefix tokens is taken as the class token, as in ViT."""
    kind = type(model).__name__
    if rows_per_image != 1:
        return Placement(
            None,
            reason=f"{rows_per_image} batch rows per image (windows?) in {kind}, "
            "whose layout vitbench does not know",
        )
    if n_q != n_k:
        return Placement(None, reason=f"{n_q} queries and {n_k} keys: not one sequence of patches")
    declared, has_cls = _declared_prefix(model)
    for p in range(MAX_GUESSED_PREFIX + 1) if declared is None else (declared,):
        grid = _grid_of(n_q - p, image_hw) if n_q > p else None
        if grid is not None:
            rows, cols = grid
            cell = (image_hw[0] / rows, image_hw[1] / cols)
            how = "declared" if declared is not None else "guessed"
            rule = f"{p} prefix ({how}) + {rows} x {cols} grid from the token count"
            cls = has_cls if declared is not None else p > 0
            return Placement(_self_layout("self", p, rows, cols, cell, cls), rule=rule)
    return Placement(
        None,
        reason=f"{n_q} tokens are not prefix tokens plus a grid of the "
        f"{image_hw[0]} x {image_hw[1]} image",
    )


#: (the family, is this it?, layout of one of its layers); the first family that matches answers
_FAMILIES = [
    ("Swin windows", _is("timm.models.swin_transformer.SwinTransformer"), _swin),
    ("SwinV2 windows", _is("timm.models.swin_transformer_v2.SwinTransformerV2"), _swin),
    ("SwinV2-CR windows", _is("timm.models.swin_transformer_v2_cr.SwinTransformerV2Cr"), _swin),
    ("MaxViT and CoAtNet partitions", _is("timm.models.maxxvit.MaxxVit"), _maxxvit),
    ("MobileViT patches", _holds("timm.models.mobilevit.MobileVitBlock"), _mobilevit),
    ("Twins windows and sub-sampling", _is("timm.models.twins.Twins"), _twins),
    ("LeViT stages", _is("timm.models.levit.Levit"), _levit),
    ("PVT-v2 stages", _is("timm.models.pvt_v2.PyramidVisionTransformerV2"), _pvt),
    ("CaiT", _is("timm.models.cait.Cait"), _cait),
    ("CrossViT branches", _is("timm.models.crossvit.CrossVit"), _crossvit),
    (
        "torchvision Swin windows",
        _is("torchvision.models.swin_transformer.SwinTransformer"),
        _tv_swin,
    ),
    ("torchvision MaxViT partitions", _is("torchvision.models.maxvit.MaxVit"), _tv_maxvit),
    ("ViT patch grid", _has_patch_grid, _plain),
]
