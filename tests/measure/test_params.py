"""Parameter counts against hand counts: tied weights, a module used twice, frozen parts, meta."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitbench.measure.closed_form import ViTShape, vit_params
from vitbench.measure.params import count_params
from vitbench.zoo import ModelSpec, create_model


class TiedLM(nn.Module):
    """Embedding(100, 16) whose weight is also the output projection's (as in GPT-2)."""

    def __init__(self, tie: bool) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, 16)  # 1600
        self.norm = nn.LayerNorm(16)  # 32
        self.out = nn.Linear(16, 100, bias=False)  # 1600, the same tensor when tied
        if tie:
            self.out.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.embed(ids)))


def test_tied_weights_are_counted_once() -> None:
    assert count_params(TiedLM(tie=False)) == (3232, 3232)
    tied = TiedLM(tie=True)
    assert tied.out.weight is tied.embed.weight
    assert count_params(tied) == (1632, 1632)


def test_a_module_used_twice_is_counted_once() -> None:
    block = nn.Linear(8, 8)  # 64 + 8
    assert count_params(nn.Sequential(block, nn.ReLU(), block)) == (72, 72)
    assert count_params(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8))) == (144, 144)


def test_frozen_parameters_are_not_trainable() -> None:
    tied = TiedLM(tie=True)
    tied.embed.weight.requires_grad_(False)  # frozen through both of its uses
    assert count_params(tied) == (1632, 32)
    untied = TiedLM(tie=False)
    untied.embed.requires_grad_(False)
    assert count_params(untied) == (3232, 1632)


def test_buffers_are_not_parameters() -> None:
    bn = nn.BatchNorm1d(10)  # weight and bias; running mean, var and count are buffers
    assert count_params(bn) == (20, 20)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_vit_count_is_the_closed_form_on_any_device(device: str) -> None:
    shape = ViTShape(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)
    kwargs = dict(patch_size=8, embed_dim=32, depth=2, num_heads=2)
    model = create_model(
        ModelSpec("vit_tiny_patch16_224", img_size=32, kwargs=kwargs), device=device
    )
    total = vit_params(shape)
    assert count_params(model) == (total, total)
