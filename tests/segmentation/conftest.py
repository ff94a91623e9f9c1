"""A tiny ADE20K tree, written in the layout the reader expects."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


def _write_pair(root, split: str, name: str, labels: np.ndarray) -> None:
    (root / "images" / split).mkdir(parents=True, exist_ok=True)
    (root / "annotations" / split).mkdir(parents=True, exist_ok=True)
    rgb = np.full((*labels.shape, 3), 128, dtype=np.uint8)
    Image.fromarray(rgb).save(root / "images" / split / f"{name}.jpg")
    Image.fromarray(labels.astype(np.uint8)).save(root / "annotations" / split / f"{name}.png")


@pytest.fixture
def ade_tree(tmp_path):
    """Two training and one validation image of 16 x 16 with labels 0 ("other"), 1 and 150."""
    labels = np.zeros((16, 16), dtype=np.uint8)
    labels[:8] = 1
    labels[8:, :8] = 150  # the rest stays 0
    root = tmp_path / "ade"
    for name in ("a", "b"):
        _write_pair(root, "training", name, labels)
    _write_pair(root, "validation", "c", labels)
    return root
