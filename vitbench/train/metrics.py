"""Classification metrics on the test split: confusion matrix and the most confused pairs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion(targets: Sequence[int], preds: Sequence[int], num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` counts: row = true class, column = predicted class."""
    from sklearn.metrics import confusion_matrix

    if len(targets) == 0:  # an empty split, or a process's empty shard of a small one
        return np.zeros((num_classes, num_classes), dtype=np.int64)
    return confusion_matrix(targets, preds, labels=list(range(num_classes)))


def most_confused(
    matrix: np.ndarray, classes: Sequence[str], k: int = 5
) -> list[dict[str, object]]:
    """The ``k`` largest off-diagonal cells: which true class was taken for which, how often."""
    off = np.array(matrix, dtype=np.int64)
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:k]
    pairs = []
    for flat in order:
        t, p = np.unravel_index(flat, off.shape)
        if off[t, p] == 0:
            break
        pairs.append({"true": classes[t], "pred": classes[p], "count": int(off[t, p])})
    return pairs
