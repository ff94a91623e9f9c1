"""Datasets with masks: digits drawn on a canvas (embedded) and ADE20K (:mod:`.ade20k`).

Each split holds ``(image (C, S, S), mask (S, S))`` pairs: the image as the model sees it (as
:class:`~vitbench.train.data.Preprocess` makes it), the mask one class index per pixel, or
``IGNORE_INDEX`` where no class is scored.

*Digits canvas*: one to ``MAX_DIGITS`` of scikit-learn's 8 x 8 digits drawn at random places on
a blank 32 x 32 canvas, never overlapping. A pixel is labelled with its digit's class (class
``d + 1`` for digit d) where the digit's ink is above ``INK`` (a quarter of full ink), else 0,
the background; so there are 11 classes and every pixel is labelled. The digits are first split
into train, validation and test (stratified, by the seed), and each split's canvases are drawn
from its own digits only, one canvas per digit of the split.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import TensorDataset

from vitbench.errors import DataError
from vitbench.segmentation import NATIVE
from vitbench.train.data import DataBundle, Preprocess, _digits, _stats, split_indices

CANVAS = 32  # side of the canvas
DIGIT = 8  # side of a digit
MAX_DIGITS = 3  # digits on one canvas, at most
INK = 0.25  # ink (in [0, 1]) above which a digit's pixel takes its class


def resize_masks(masks: Tensor, side: int) -> Tensor:
    """``(..., H, W)`` class indices as ``(..., side, side)`` by nearest neighbour (classes are
    never blended), as int64."""
    if tuple(masks.shape[-2:]) == (side, side):
        return masks.long()
    lead = masks.shape[:-2]
    flat = masks.reshape(-1, 1, *masks.shape[-2:]).float()  # (N, 1, H, W)
    out = F.interpolate(flat, size=(side, side), mode="nearest-exact")
    return out.reshape(*lead, side, side).long()


def _places(count: int, gen: torch.Generator) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` digits on the canvas, no two overlapping."""
    corners: list[tuple[int, int]] = []
    while len(corners) < count:
        y, x = torch.randint(0, CANVAS - DIGIT + 1, (2,), generator=gen).tolist()
        if all(abs(y - v) >= DIGIT or abs(x - u) >= DIGIT for v, u in corners):
            corners.append((y, x))
    return corners


def draw_canvases(
    digits: Tensor, labels: Tensor, count: int, seed: int
) -> tuple[Tensor, Tensor, list[list[tuple[int, int, int]]]]:
    """``count`` canvases ``(count, 1, 32, 32)`` with their masks ``(count, 32, 32)`` and, per
    canvas, what was drawn where: ``(digit index, top, left)``; from ``digits`` ``(N, 8, 8)``
    in [0, 1] with class ``labels`` ``(N,)``."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.zeros(count, 1, CANVAS, CANVAS)
    masks = torch.zeros(count, CANVAS, CANVAS, dtype=torch.long)
    drawn = []
    for i in range(count):
        k = int(torch.randint(1, MAX_DIGITS + 1, (1,), generator=gen))
        picks = torch.randint(0, len(digits), (k,), generator=gen).tolist()
        drawn.append([(j, y, x) for j, (y, x) in zip(picks, _places(k, gen), strict=True)])
        for j, y, x in drawn[-1]:
            images[i, 0, y : y + DIGIT, x : x + DIGIT] = digits[j]
            ink = digits[j] > INK
            masks[i, y : y + DIGIT, x : x + DIGIT][ink] = int(labels[j]) + 1
    return images, masks, drawn


def digits_canvas(
    *,
    img_size: int,
    in_chans: int,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    subset: int | None,
) -> DataBundle:
    """The digits-canvas splits, normalised with the training canvases' statistics."""
    pixels, labels, names = _digits()  # (N, 1, 8, 8) in [0, 1], (N,)
    splits = split_indices(labels.tolist(), val_fraction, test_fraction, seed)
    drawn = []
    for part, ids in enumerate(splits):
        ids = torch.as_tensor(ids, dtype=torch.long)
        count = len(ids) if subset is None else min(len(ids), subset)
        drawn.append(draw_canvases(pixels[ids, 0], labels[ids], count, seed + part)[:2])
    mean, std = _stats(drawn[0][0])
    prep = Preprocess(img_size, in_chans, mean, std)
    train, val, test = (TensorDataset(prep(x), resize_masks(m, img_size)) for x, m in drawn)
    classes = ["background", *names]
    return DataBundle("digits_canvas", train, val, test, classes, img_size, in_chans, mean, std)


def load_masks(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    img_size: int | None = None,
    in_chans: int | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    subset: int | None = None,
) -> DataBundle:
    """The segmentation dataset ``name`` as train/val/test splits of images and masks, sized
    ``img_size`` (default: the data's) with ``in_chans`` channels."""
    if name not in NATIVE:
        raise DataError(f"unknown segmentation dataset '{name}'; choose from {', '.join(NATIVE)}")
    side, chans = NATIVE[name]
    sizes = dict(img_size=img_size or side, in_chans=in_chans or chans, seed=seed, subset=subset)
    if name == "digits_canvas":
        return digits_canvas(val_fraction=val_fraction, test_fraction=test_fraction, **sizes)
    from vitbench.segmentation.ade20k import load_ade20k

    if data_dir is None:
        raise DataError("ade20k is read from data_dir, a folder holding images/ and annotations/")
    return load_ade20k(Path(data_dir), val_fraction=val_fraction, **sizes)
