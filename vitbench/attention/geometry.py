"""Token layouts: which tokens of an attention layer are prefix tokens and where each patch sits.

A layout says, for one attention layer, how many query and key tokens are prefix tokens (class,
distillation, registers) and gives the centre of every remaining token in input-image pixels.
Positions are in the coordinates of the image the model was fed, so one pixel means the same
thing in every family: a 16 px patch of a 224 px ViT, a 4 px cell of Swin's first stage, a
spatially reduced key of PVT-v2 that covers ``sr`` x ``sr`` cells.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class TokenLayout:
    """Token roles and positions of one attention layer (N counts include prefix tokens).

    kind: ``self`` (queries and keys are the same tokens), ``window`` (Swin: one window per
    batch row), ``reduced`` (PVT-v2: keys spatially reduced), ``class`` (CaiT: the class token
    queries), ``cross`` (CrossViT: one branch's class token queries the other branch).
    """

    kind: str
    n_prefix_q: int
    n_prefix_k: int
    query_yx: np.ndarray | None  # (Nq - n_prefix_q, 2) centres in px; None: no patch queries
    key_yx: np.ndarray  # (Nk - n_prefix_k, 2) centres in px
    self_key: np.ndarray | None  # (Nq,) the key index of each query's own token
    cls_key: int | None  # key index of the class token, None when keys hold none
    grid: tuple[int, int] | None  # (rows, cols) of the patch queries when they form a grid

    @property
    def n_queries(self) -> int:
        return self.n_prefix_q + (0 if self.query_yx is None else len(self.query_yx))

    @property
    def n_keys(self) -> int:
        return self.n_prefix_k + len(self.key_yx)

    def distances(self) -> torch.Tensor | None:
        """(Nq', Nk') Euclidean distances in px between patch queries and patch keys."""
        if self.query_yx is None:
            return None
        q = torch.as_tensor(self.query_yx, dtype=torch.float64)
        k = torch.as_tensor(self.key_yx, dtype=torch.float64)
        return torch.cdist(q, k).float()


def grid_centres(rows: int, cols: int, cell_h: float, cell_w: float) -> np.ndarray:
    """(rows * cols, 2) centres (y, x) in px of a row-major grid of cells."""
    ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return np.stack([(ys.ravel() + 0.5) * cell_h, (xs.ravel() + 0.5) * cell_w], axis=1)


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


def layout_for(
    model: nn.Module, name: str, image_hw: tuple[int, int], n_q: int, n_k: int
) -> TokenLayout | None:
    """The layout of attention layer ``name`` for an input of ``image_hw`` px, or None when the
    family is not known (metrics that need positions are then left empty)."""
    for family, resolve in _FAMILIES:
        if family(model):
            layout = resolve(model, name, image_hw)
            if layout is None or (layout.n_queries, layout.n_keys) != (n_q, n_k):
                return None  # a shape the family's rules do not predict: no positions
            return layout
    return None


def _is(cls_path: str):
    module, cls = cls_path.rsplit(".", 1)

    def test(model: nn.Module) -> bool:
        import importlib

        return isinstance(model, getattr(importlib.import_module(module), cls))

    return test


def _swin(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    block = model.get_submodule(name.rsplit(".", 1)[0])
    res = getattr(block, "input_resolution", None)
    win = getattr(block, "window_size", None)
    if res is None or win is None:
        return None
    (fh, fw), (wh, ww) = _pair(res), _pair(win)
    cell = (image_hw[0] / fh, image_hw[1] / fw)
    return _self_layout("window", 0, wh, ww, cell, cls=False)


def _pvt(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    stage = _stage(name, "stages")
    attn = model.get_submodule(name)
    if stage is None:
        return None
    h, w = math.ceil(image_hw[0] / 4), math.ceil(image_hw[1] / 4)  # stem: 7x7 conv, stride 4
    for _ in range(stage):
        h, w = math.ceil(h / 2), math.ceil(w / 2)  # each later stage: 3x3 conv, stride 2
    cell = (image_hw[0] / h, image_hw[1] / w)
    queries = grid_centres(h, w, *cell)
    if getattr(attn, "pool", None) is not None:  # linear attention: keys pooled to 7 x 7
        keys = np.stack(
            np.meshgrid(
                _pool_centres(h, 7) * cell[0], _pool_centres(w, 7) * cell[1], indexing="ij"
            ),
            axis=-1,
        ).reshape(-1, 2)
    elif getattr(attn, "sr", None) is not None:  # keys: sr x sr cells merged by a strided conv
        sr = attn.sr.kernel_size[0]
        keys = grid_centres(h // sr, w // sr, cell[0] * sr, cell[1] * sr)
    else:
        keys = queries
    self_key = np.arange(h * w) if keys is queries else None
    return TokenLayout("reduced", 0, 0, queries, keys, self_key, None, (h, w))


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


def _grid(patch_embed: nn.Module, image_hw) -> tuple[int, int]:
    ph, pw = _pair(patch_embed.patch_size)
    h, w = _pair(image_hw)
    return h // ph, w // pw


def _has_patch_grid(model: nn.Module) -> bool:
    pe = getattr(model, "patch_embed", None)
    return pe is not None and hasattr(pe, "patch_size") and not isinstance(pe, nn.ModuleList)


def _plain(model: nn.Module, name: str, image_hw: tuple[int, int]) -> TokenLayout | None:
    """ViT, DeiT (distilled: two prefix tokens), BEiT, models with registers, our own ViTs."""
    n_prefix = getattr(model, "num_prefix_tokens", None)
    if n_prefix is None:
        n_prefix = int(getattr(model, "cls_token", None) is not None)
    holder = getattr(model, "tokens", model)  # our own ViTs keep their prefix tokens apart
    has_cls = getattr(holder, "cls_token", None) is not None  # first when present
    rows, cols = _grid(model.patch_embed, image_hw)
    cell = (image_hw[0] / rows, image_hw[1] / cols)
    return _self_layout("self", int(n_prefix), rows, cols, cell, cls=has_cls)


#: (is this the family?, layout of one of its layers); the first family that matches answers
_FAMILIES = [
    (_is("timm.models.swin_transformer.SwinTransformer"), _swin),
    (_is("timm.models.pvt_v2.PyramidVisionTransformerV2"), _pvt),
    (_is("timm.models.cait.Cait"), _cait),
    (_is("timm.models.crossvit.CrossVit"), _crossvit),
    (_has_patch_grid, _plain),
]
