"""Confusion matrix and most confused pairs against counts done by hand."""

from __future__ import annotations

import numpy as np

from vitbench.train.metrics import confusion, most_confused


def test_confusion_rows_are_true_classes() -> None:
    targets = [0, 0, 1, 1, 1, 2]
    preds = [0, 1, 1, 2, 2, 2]
    m = confusion(targets, preds, 4)  # class 3 never appears: still a row and a column
    expected = np.array([[1, 1, 0, 0], [0, 1, 2, 0], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert np.array_equal(m, expected)
    assert np.array_equal(confusion([], [], 3), np.zeros((3, 3)))  # an empty split


def test_most_confused_pairs_in_order() -> None:
    m = np.array([[5, 1, 0], [3, 4, 2], [0, 0, 6]])
    pairs = most_confused(m, ["a", "b", "c"], k=5)
    assert pairs == [
        {"true": "b", "pred": "a", "count": 3},
        {"true": "b", "pred": "c", "count": 2},
        {"true": "a", "pred": "b", "count": 1},
    ]  # zero cells are not pairs
