"""Mean attention distance against truths computed here, not by the code under test."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from vitbench.attention.distance import mean_attention_distance, query_distances
from vitbench.attention.geometry import TokenLayout, grid_centres


def brute_force_uniform(rows: int, cols: int, patch: float) -> float:
    """Mean over query patches of the mean distance to every patch, all pairs enumerated."""
    cells = list(itertools.product(range(rows), range(cols)))
    total = 0.0
    for qy, qx in cells:
        total += sum(math.hypot(qy - ky, qx - kx) * patch for ky, kx in cells) / len(cells)
    return total / len(cells)


def vit_layout(rows: int, cols: int, patch: int, n_prefix: int = 1) -> TokenLayout:
    yx = grid_centres(rows, cols, patch, patch)
    return TokenLayout(
        "self", n_prefix, n_prefix, yx, yx, np.arange(n_prefix + rows * cols), 0, (rows, cols)
    )


def test_uniform_attention_14x14_grid_of_16px_patches_is_116_49px():
    truth = brute_force_uniform(14, 14, 16)
    assert truth == pytest.approx(116.49, abs=0.005)
    n = 196
    w = torch.full((2, 3, n, n), 1.0 / n)  # (B, H, N, N), no prefix tokens
    got = mean_attention_distance(w, vit_layout(14, 14, 16, n_prefix=0))
    assert torch.allclose(got, torch.full((3,), truth), atol=1e-3)


def test_uniform_over_patches_with_a_class_token_dropped_from_both_axes():
    n = 1 + 196
    w = torch.zeros(1, 1, n, n)
    w[:, :, :, 1:] = 1.0 / 196  # every row spreads over the patches only
    w[:, :, 0, :] = 0.0
    w[:, :, 0, 0] = 1.0  # the class token's own row must not count
    got = mean_attention_distance(w, vit_layout(14, 14, 16))
    assert got.item() == pytest.approx(brute_force_uniform(14, 14, 16), abs=1e-3)


def test_attention_to_self_is_zero():
    w = torch.eye(197).expand(1, 2, 197, 197)
    assert torch.equal(mean_attention_distance(w, vit_layout(14, 14, 16)), torch.zeros(2))


def test_one_horizontal_neighbour_is_one_patch():
    rows, cols = 14, 14
    n = rows * cols
    w = torch.zeros(1, 1, 1 + n, 1 + n)
    w[0, 0, 0, 0] = 1
    for i in range(n):
        r, c = divmod(i, cols)
        j = r * cols + (c + 1 if c + 1 < cols else c - 1)  # right neighbour, left at the edge
        w[0, 0, 1 + i, 1 + j] = 1
    assert mean_attention_distance(w, vit_layout(rows, cols, 16)).item() == pytest.approx(16.0)


def test_rows_are_not_renormalised_by_default_as_the_authors():
    n = 1 + 4  # a 2 x 2 grid; each patch gives half to the class token, half to its neighbour
    w = torch.zeros(1, 1, n, n)
    w[0, 0, 0, 0] = 1
    for q, k in {1: 2, 2: 1, 3: 4, 4: 3}.items():
        w[0, 0, q, 0] = 0.5
        w[0, 0, q, k] = 0.5
    layout = vit_layout(2, 2, 16)
    assert mean_attention_distance(w, layout).item() == pytest.approx(8.0)
    assert mean_attention_distance(w, layout, renormalise=True).item() == pytest.approx(16.0)


def test_non_square_grid_and_cell_size_follow_the_layout():
    rows, cols, ph, pw = 2, 5, 16, 8
    yx = grid_centres(rows, cols, ph, pw)
    layout = TokenLayout("self", 0, 0, yx, yx, np.arange(10), None, (rows, cols))
    n = rows * cols
    w = torch.full((1, 1, n, n), 1.0 / n)
    truth = np.mean([[np.hypot(*(a - b)) for b in yx] for a in yx])
    assert mean_attention_distance(w, layout).item() == pytest.approx(truth, rel=1e-5)


def test_query_distances_shape_drops_prefix_queries():
    w = torch.full((3, 2, 6, 6), 1 / 6)
    d = torch.ones(4, 4)
    assert query_distances(w, d, n_prefix_q=2, n_prefix_k=2).shape == (3, 2, 4)
