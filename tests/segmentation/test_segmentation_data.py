"""The digits canvas is labelled exactly where its digits were drawn; the ADE20K reader reads a
tiny tree in that layout, with its zero label reduced."""

from __future__ import annotations

import pytest
import torch

from vitbench.errors import DataError
from vitbench.segmentation import IGNORE_INDEX
from vitbench.segmentation.data import (
    CANVAS,
    DIGIT,
    INK,
    MAX_DIGITS,
    draw_canvases,
    load_masks,
    resize_masks,
)


def test_canvas_masks_label_the_ink_of_each_digit_and_nothing_else() -> None:
    gen = torch.Generator().manual_seed(1)
    digits = torch.rand(20, DIGIT, DIGIT, generator=gen)
    labels = torch.arange(20) % 10
    images, masks, drawn = draw_canvases(digits, labels, 30, seed=3)
    assert images.shape == (30, 1, CANVAS, CANVAS) and masks.shape == (30, CANVAS, CANVAS)
    for image, mask, placed in zip(images, masks, drawn, strict=True):
        assert 1 <= len(placed) <= MAX_DIGITS
        outside = torch.ones(CANVAS, CANVAS, dtype=torch.bool)
        for j, y, x in placed:
            box = (slice(y, y + DIGIT), slice(x, x + DIGIT))
            assert torch.equal(image[0][box], digits[j])
            expected = torch.where(digits[j] > INK, int(labels[j]) + 1, 0)
            assert torch.equal(mask[box], expected)
            assert outside[box].all()  # no two digits overlap
            outside[box] = False
        assert (mask[outside] == 0).all() and (image[0][outside] == 0).all()


def test_digits_canvas_splits_and_classes() -> None:
    data = load_masks("digits_canvas", subset=40, img_size=64)
    assert data.classes == ["background", *map(str, range(10))]
    image, mask = data.train[0]
    assert image.shape == (1, 64, 64) and mask.shape == (64, 64) and mask.dtype == torch.long
    assert len(data.train) == len(data.val) == len(data.test) == 40
    assert int(mask.max()) <= 10  # nearest-neighbour resizing blends no labels


def test_resize_masks_keeps_labels_by_nearest_neighbour() -> None:
    mask = torch.tensor([[0, 255], [3, 7]])
    assert resize_masks(mask, 4).tolist() == [
        [0, 0, 255, 255],
        [0, 0, 255, 255],
        [3, 3, 7, 7],
        [3, 3, 7, 7],
    ]


def test_ade20k_reader_reduces_the_zero_label(ade_tree) -> None:
    data = load_masks("ade20k", data_dir=ade_tree, img_size=16, val_fraction=0.5)
    assert len(data.classes) == 150 and data.classes[:2] == ["wall", "building"]
    assert (len(data.train), len(data.val), len(data.test)) == (1, 1, 1)
    image, mask = data.test[0]
    assert image.shape == (3, 16, 16)
    assert (mask[:8] == 0).all()  # label 1, the first class
    assert (mask[8:, :8] == 149).all()  # label 150, the last
    assert (mask[8:, 8:] == IGNORE_INDEX).all()  # 0, "other": scored nowhere


def test_ade20k_image_without_annotation_is_one_line(ade_tree) -> None:
    (ade_tree / "annotations" / "training" / "b.png").unlink()
    with pytest.raises(DataError, match="have no annotation PNG.*b.jpg"):
        load_masks("ade20k", data_dir=ade_tree)
