"""Head gates: masking none changes nothing, masking a whole layer changes the output."""

from __future__ import annotations

import timm
import torch

from vitbench.attention.extract import find_attention_layers
from vitbench.attention.importance import (
    HeadGates,
    classification_loss,
    head_mask_importance,
    normalise_per_layer,
)


def tiny_vit():
    torch.manual_seed(0)
    return timm.create_model("vit_small_patch16_224", img_size=32, depth=2, num_classes=10).eval()


def test_masking_none_changes_nothing_and_masking_a_layer_changes_the_output():
    model = tiny_vit()
    layers = find_attention_layers(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
        gates = HeadGates(layers)
        with gates:
            unmasked = model(x)
            gates.gates[0].zero_()  # every head of the first layer
            masked = model(x)
        after = model(x)
    assert torch.equal(unmasked, before)
    assert not torch.allclose(masked, before, atol=1e-4)
    assert torch.equal(after, before)  # the hooks are gone


def test_gate_gradients_and_masking_give_one_score_per_head():
    model = tiny_vit()
    layers = find_attention_layers(model)
    x, y = torch.randn(4, 3, 32, 32), torch.arange(4)
    gates = HeadGates(layers, requires_grad=True)
    with gates:
        grads = torch.autograd.grad(classification_loss(model(x), y), gates.gates)
    scores = normalise_per_layer([g.abs() for g in grads])
    assert [s.shape for s in scores] == [(6,), (6,)]
    assert all(abs(s.norm().item() - 1) < 1e-5 for s in scores)
    d_loss, d_acc = head_mask_importance(model, layers, [(x, y)])
    assert [d.shape for d in d_loss + d_acc] == [(6,)] * 4
    assert any(d.abs().sum() > 0 for d in d_loss)
