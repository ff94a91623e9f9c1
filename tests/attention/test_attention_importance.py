"""Head gates against outside truths: a head masked by hand, the finite difference of the loss."""

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


def mha_heads_masked(mha: torch.nn.MultiheadAttention, x: torch.Tensor, head: int) -> torch.Tensor:
    """Self-attention with one head's output zeroed, written out from the module's weights."""
    b, n, d = x.shape
    h = mha.num_heads
    q, k, v = torch.nn.functional.linear(x, mha.in_proj_weight, mha.in_proj_bias).chunk(3, -1)
    q, k, v = (t.reshape(b, n, h, d // h).transpose(1, 2) for t in (q, k, v))  # (B, H, N, d/H)
    weights = (q @ k.transpose(-2, -1) / (d // h) ** 0.5).softmax(-1)
    out = weights @ v  # (B, H, N, d/H)
    out[:, head] = 0
    return mha.out_proj(out.transpose(1, 2).reshape(b, n, d))


class MhaBlock(torch.nn.Module):
    """A block whose attention applies its output projection functionally, as torchvision's."""

    def __init__(self, dim: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.attn = torch.nn.MultiheadAttention(dim, heads, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=False)[0]


def test_a_gate_masks_a_head_that_multihead_attention_projects_functionally():
    torch.manual_seed(0)
    model = MhaBlock().double().eval()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    layers = find_attention_layers(model, example=x)
    assert [layer.reader for layer in layers] == ["mha"]
    gates = HeadGates(layers)
    with torch.no_grad(), gates:
        gates.gates[0][1] = 0.0
        masked = model(x)
        truth = mha_heads_masked(model.attn, x, head=1)
    torch.testing.assert_close(masked, truth)
    assert isinstance(model.attn.out_proj.weight, torch.nn.Parameter)  # restored on leaving


def test_gate_gradient_equals_the_finite_difference_of_the_loss():
    model = tiny_vit().double()
    layers = find_attention_layers(model)
    x, y = torch.randn(3, 3, 32, 32, dtype=torch.float64), torch.arange(3)
    gates = HeadGates(layers, requires_grad=True)

    def loss() -> torch.Tensor:  # in float64 throughout, unlike classification_loss
        return torch.nn.functional.cross_entropy(model(x), y, reduction="sum")

    with gates:
        (grad,) = torch.autograd.grad(loss(), gates.gates[1])
        eps, losses = 1e-6, []
        with torch.no_grad():
            for step in (eps, -eps):
                gates.gates[1][2] += step
                losses.append(float(loss()))
                gates.gates[1][2] -= step
    assert abs(grad[2].item() - (losses[0] - losses[1]) / (2 * eps)) < 1e-5
