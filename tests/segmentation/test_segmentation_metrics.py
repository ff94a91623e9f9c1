"""Per-class IoU, mIoU and pixel accuracy against a confusion matrix counted by hand, and
against scikit-learn's Jaccard score; ignored pixels count nowhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitbench.segmentation import IGNORE_INDEX
from vitbench.segmentation.metrics import (
    class_iou,
    hits,
    mean_iou,
    pixel_accuracy,
    pixel_confusion,
)

# five labelled pixels and one ignored, predicted as class 0 (which must not count)
TARGET = torch.tensor([[0, 0, 1], [1, 2, IGNORE_INDEX]])
PRED = torch.tensor([[0, 1, 1], [1, 1, 0]])


def test_confusion_counts_the_labelled_pixels_only() -> None:
    # (true, predicted): (0,0) (0,1) (1,1) (1,1) (2,1); class 3 appears nowhere
    by_hand = [[1, 1, 0, 0], [0, 2, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert pixel_confusion(TARGET, PRED, 4).tolist() == by_hand


def test_iou_miou_and_accuracy_by_hand() -> None:
    matrix = pixel_confusion(TARGET, PRED, 4).numpy()
    # class 0: TP 1, FN 1, FP 0 -> 1/2; class 1: TP 2, FP 2 -> 2/4; class 2: TP 0, FN 1 -> 0
    iou = class_iou(matrix)
    assert iou[:3] == pytest.approx([0.5, 0.5, 0.0])
    assert np.isnan(iou[3])  # neither labelled nor predicted: left out of the mean
    assert mean_iou(matrix) == pytest.approx(1 / 3)
    assert pixel_accuracy(matrix) == pytest.approx(3 / 5)


def test_iou_agrees_with_sklearn_jaccard() -> None:
    from sklearn.metrics import jaccard_score

    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (4, 16, 16), generator=gen)
    target[:, :3] = IGNORE_INDEX
    pred = torch.randint(0, 5, (4, 16, 16), generator=gen)
    labelled = target != IGNORE_INDEX
    reference = jaccard_score(target[labelled], pred[labelled], average=None, labels=range(5))
    matrix = pixel_confusion(target, pred, 5).numpy()
    assert class_iou(matrix) == pytest.approx(reference)
    assert mean_iou(matrix) == pytest.approx(reference.mean())


def test_hits_of_masks_skip_ignored_pixels_and_of_images_count_images() -> None:
    logits = torch.nn.functional.one_hot(PRED, 3).permute(2, 0, 1)[None].float()  # (1, 3, 2, 3)
    assert hits(logits, TARGET[None]) == (3, 5)
    image_logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])  # argmax 0, 1, 0
    assert hits(image_logits, torch.tensor([0, 0, 0])) == (2, 3)
