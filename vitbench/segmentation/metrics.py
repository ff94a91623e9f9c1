"""Scores of per-pixel predictions: the pixel confusion matrix, per-class IoU, mIoU, accuracy.

IoU of class c is ``TP / (TP + FP + FN)`` read from the confusion matrix (row = true class,
column = predicted); pixels labelled ``IGNORE_INDEX`` count nowhere. A class that is neither in
the labels nor in the predictions has no IoU (NaN) and is left out of the mean, as mmseg does;
a class predicted but never labelled scores 0.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vitbench.segmentation import IGNORE_INDEX


def pixel_confusion(
    target: Tensor, pred: Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """``(num_classes, num_classes)`` pixel counts, row = true class, column = predicted, from
    ``target`` and ``pred`` of one shape (e.g. ``(B, H, W)``); ignored pixels are not counted."""
    labelled = target != ignore_index
    cells = target[labelled].long() * num_classes + pred[labelled].long()
    counts = torch.bincount(cells, minlength=num_classes * num_classes)
    return counts.view(num_classes, num_classes)


def class_iou(matrix: np.ndarray) -> np.ndarray:
    """Per-class IoU, ``(classes,)``; NaN for a class absent from labels and predictions."""
    m = np.asarray(matrix, dtype=np.float64)
    hits = np.diag(m)
    union = m.sum(0) + m.sum(1) - hits
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, hits / union, np.nan)


def mean_iou(matrix: np.ndarray) -> float:
    """mIoU: the mean IoU of the classes in the labels or the predictions (NaN if none)."""
    iou = class_iou(matrix)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(matrix: np.ndarray) -> float:
    """The share of labelled pixels predicted right (NaN with none)."""
    m = np.asarray(matrix)
    total = m.sum()
    return float(np.trace(m) / total) if total else float("nan")


def hits(logits: Tensor, target: Tensor) -> tuple[int, int]:
    """Right predictions and labels scored: for ``(B, classes)`` logits an image each, for
    ``(B, classes, H, W)`` the pixels of ``(B, H, W)`` masks that are not ignored."""
    right = logits.argmax(1) == target
    if target.dim() == 1:
        return int(right.sum()), target.numel()
    labelled = target != IGNORE_INDEX
    return int((right & labelled).sum()), int(labelled.sum())
