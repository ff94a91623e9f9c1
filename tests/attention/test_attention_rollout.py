"""Attention rollout: identity in, identity out; rows always sum to one."""

from __future__ import annotations

import pytest
import torch

from vitbench.attention.rollout import attention_rollout, discard_lowest, fuse_heads


def test_rollout_of_identity_attention_is_the_identity():
    eye = torch.eye(10).expand(2, 4, 10, 10)
    r = attention_rollout([eye, eye, eye])
    assert torch.allclose(r, torch.eye(10).expand(2, 10, 10))
    assert torch.allclose(r.sum(-1), torch.ones(2, 10))


@pytest.mark.parametrize("fusion", ["mean", "max", "min"])
@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.9])
def test_rows_sum_to_one_for_every_fusion_and_discard_ratio(fusion, ratio):
    g = torch.Generator().manual_seed(0)
    layers = [torch.rand(2, 3, 9, 9, generator=g).softmax(-1) for _ in range(4)]
    r = attention_rollout(layers, fusion, ratio)
    assert torch.allclose(r.sum(-1), torch.ones(2, 9), atol=1e-5)


def test_discard_never_drops_the_class_token():
    a = torch.tensor([[[0.01, 0.5, 0.49], [0.0, 0.3, 0.7], [0.001, 0.9, 0.099]]])
    kept = discard_lowest(a, 0.34)  # one key goes; the class token is the lowest in every row
    assert torch.equal(kept[..., 0], a[..., 0])
    assert (kept[..., 1:] > 0).sum(-1).tolist() == [[1, 1, 1]]


def test_head_fusion():
    w = torch.stack([torch.zeros(3, 3), torch.ones(3, 3)])[None]  # (1, 2, 3, 3)
    assert fuse_heads(w, "mean").unique().tolist() == [0.5]
    assert fuse_heads(w, "max").unique().tolist() == [1.0]
    assert fuse_heads(w, "min").unique().tolist() == [0.0]
