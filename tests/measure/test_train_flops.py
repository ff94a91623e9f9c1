"""Training-step MACs (forward, loss, backward) against hand counts, the closed form of a plain
ViT and torch's FlopCounterMode."""

from __future__ import annotations

import itertools

import pytest
import timm.layers
import torch
from test_flops import vit_spec
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from vitbench.measure.closed_form import (
    ViTShape,
    vit_backward_terms,
    vit_macs,
    vit_macs_terms,
    vit_train_macs,
)
from vitbench.measure.flops import MacCounter, count_macs, count_train_macs
from vitbench.measure.model_cost import count_model
from vitbench.zoo import ModelSpec, create_model, set_fused_attn

aten = torch.ops.aten
DEVICES = ["cpu", "meta"] + (["cuda"] if torch.cuda.is_available() else [])


def cross_entropy(output: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (B, C) logits against random labels, as the training step's loss."""
    labels = torch.randint(output.shape[1], output.shape[:1], device=output.device)
    return F.cross_entropy(output, labels)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_mlp_step_by_hand(device: str) -> None:
    # B=4, Linear(8, 16), GELU, Linear(16, 3); the input needs no gradient
    mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 3)).to(device)
    step = count_train_macs(mlp, (torch.randn(4, 8, device=device),), cross_entropy)
    assert step.forward.macs == 704  # 4 x (8 x 16 + 16 x 3)
    # input gradient of the second layer 4 x 16 x 3 = 192; weight gradients 4 x 8 x 16 = 512
    # and 4 x 16 x 3 = 192; the first layer's input gradient is not computed
    assert step.backward.macs == 896
    assert step.backward.by_op == {"mm": 896}
    assert step.macs == 1600 and step.recompute == 0 and step.uncounted == {}
    assert all(p.grad is None for p in mlp.parameters())  # the count leaves no gradients


def test_frozen_model_has_no_backward() -> None:
    frozen = nn.Linear(8, 3).requires_grad_(False)
    step = count_train_macs(frozen, (torch.randn(4, 8),), cross_entropy)
    assert (step.forward.macs, step.backward.macs) == (96, 0)  # 4 x 8 x 3


@pytest.mark.parametrize(
    ("norm", "forward", "backward"),
    [
        # (B, 6) = 18 elements; the linear's weight gradient 3 x 4 x 6 = 72 in every backward
        (nn.LayerNorm(6), 18 * 5, 72 + 18 * 5 + 18),  # input grad 5/elem, gamma 1/elem
        (nn.LayerNorm(6, elementwise_affine=False), 18 * 4, 72 + 18 * 4),
        (nn.BatchNorm1d(6), 18 * 5, 72 + 18 * 5 + 18),
        (nn.BatchNorm1d(6).eval(), 18 * 2, 72 + 18 * 2 + 18),  # a per-channel affine map
        (nn.GroupNorm(2, 6), 18 * 5, 72 + 18 * 5 + 18),
    ],
    ids=["layer", "layer-no-affine", "batch", "batch-eval", "group"],
)
def test_norm_backward_by_hand(norm: nn.Module, forward: int, backward: int) -> None:
    model = nn.Sequential(nn.Linear(4, 6), norm)  # linear: 3 x 4 x 6 = 72 forward
    step = count_train_macs(model, (torch.randn(3, 4),), lambda out: out.square().sum())
    assert step.forward.macs == 72 + forward
    assert step.backward.macs == backward
    assert step.uncounted == {}


TRAIN_SHAPES = [
    ViTShape(img_size=32, patch_size=16, embed_dim=64, depth=2, num_heads=2, num_classes=10),
    ViTShape(img_size=32, patch_size=8, embed_dim=48, depth=1, num_heads=3, num_classes=7),
]


@pytest.mark.parametrize(
    ("shape", "device", "fused"),
    list(itertools.product(TRAIN_SHAPES, DEVICES, (True, False))),
    ids=lambda v: str(v.tokens) if isinstance(v, ViTShape) else str(v),
)
def test_vit_train_macs_equal_closed_form(shape: ViTShape, device: str, fused: bool) -> None:
    spec = vit_spec(shape)
    model = create_model(spec, device=device)
    set_fused_attn(model, fused)
    cost = count_model(spec, batch_size=3, train=True, model=model, device=device)
    assert cost.train_macs == vit_train_macs(shape)  # per sample
    assert cost.train.macs == 3 * vit_train_macs(shape)
    assert cost.train.forward.macs == 3 * vit_macs(shape)
    assert cost.train.uncounted == {}
    assert not model.training  # the count ran in train mode and put the mode back


def test_vit_b16_train_macs_a_little_under_three_times_forward() -> None:
    cost = count_model(ModelSpec("vit_base_patch16_224"), train=True)  # meta
    assert cost.train_macs == vit_train_macs(ViTShape()) == 52_617_485_568
    assert 2.99 < cost.train_macs / cost.macs < 3  # the patch embedding has no input gradient


def _scores_recompute(s: ViTShape, batch: int) -> int:
    """FlopCounterMode's extra for a fused attention backward: Q K^T again, per layer."""
    return s.depth * batch * s.num_heads * s.tokens**2 * (s.embed_dim // s.num_heads)


@pytest.mark.parametrize("fused", [True, False])
def test_vit_step_against_flop_counter_mode(fused: bool) -> None:
    """FlopCounterMode: 2 FLOPs per MAC, no norms; a fused backward adds the scores' recompute."""
    shape, batch = TRAIN_SHAPES[0], 2
    model = create_model(vit_spec(shape)).train()
    set_fused_attn(model, fused)
    x = torch.randn(batch, 3, shape.img_size, shape.img_size)
    ours = count_train_macs(model, (x,), cross_entropy)
    with FlopCounterMode(display=False) as ref:
        cross_entropy(model(x)).backward()
    norms = vit_macs_terms(shape)["layer_norms"] + sum(vit_backward_terms(shape)["layer_norms"])
    extra = _scores_recompute(shape, batch) if fused else 0
    assert ref.get_total_flops() == 2 * (ours.macs - batch * norms + extra)


def test_convolutions_against_flop_counter_mode() -> None:
    """Input and weight gradients of plain, strided and transposed convolutions."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # (2, 8, 9, 9); the image needs no input gradient
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2),  # (2, 8, 4, 4)
        nn.ConvTranspose2d(8, 4, 2, stride=2),  # (2, 4, 8, 8)
        nn.Flatten(),
        nn.Linear(256, 5),
    )
    x = torch.randn(2, 3, 9, 9)
    ours = count_train_macs(model, (x,), cross_entropy)
    with FlopCounterMode(display=False) as ref:
        cross_entropy(model(x)).backward()
    assert ref.get_total_flops() == 2 * ours.macs
    assert ours.uncounted == {}


@pytest.mark.parametrize(
    ("conv", "size", "forward"),
    [
        # out (1, 6, 3, 3): 9 positions x 6 channels x (2 input channels of the group x 3 x 3)
        (nn.Conv2d(4, 6, 3, groups=2), 5, 972),
        # each of 3 x 3 x 4 input elements meets the 3 x 2 x 2 weights of its group
        (nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2), 3, 432),
    ],
    ids=["grouped", "grouped-transposed"],
)
def test_grouped_convolution_by_hand(conv: nn.Module, size: int, forward: int) -> None:
    """The input and the weight gradient each repeat every multiply of the forward once.
    (FlopCounterMode's weight gradient ignores groups: it counts groups x that here.)"""
    x = torch.randn(1, 4, size, size, requires_grad=True)  # an input gradient too
    step = count_train_macs(conv, (x,), lambda out: out.sum())
    assert (step.forward.macs, step.backward.macs) == (forward, 2 * forward)


def _meta(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, device="meta")


def _cpu_flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    out, lse = aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)
    aten._scaled_dot_product_flash_attention_for_cpu_backward(out, q, k, v, out, lse, 0.0, False)


def _flash(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    out, lse, cq, ck, mq, mk, seed, offset, _ = aten._scaled_dot_product_flash_attention(q, k, v)
    args = (out, lse, cq, ck, mq, mk, 0.0, False, seed, offset)
    aten._scaled_dot_product_flash_attention_backward(out, q, k, v, *args)


def _efficient(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    out, lse, seed, offset = aten._scaled_dot_product_efficient_attention(q, k, v, None, True)
    args = (_meta(0), out, lse, seed, offset, 0.0, [True, True, True, False])
    aten._scaled_dot_product_efficient_attention_backward(out, q, k, v, *args)


def _cudnn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    out, lse, *_, seed, offset, _ = aten._scaled_dot_product_cudnn_attention(q, k, v, None, True)
    args = (out, lse, seed, offset, None, None, None, 5, 7, 0.0, False)
    aten._scaled_dot_product_cudnn_attention_backward(out, q, k, v, *args)


def _flash_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    out, lse, rng, unused, _ = aten._flash_attention_forward(
        q, k, v, None, None, 5, 7, 0.0, False, False
    )
    args = (out, lse, None, None, 5, 7, 0.0, False, rng, unused)
    aten._flash_attention_backward(out, q, k, v, *args)


def _efficient_kernel(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    out, lse, seed, offset, *_ = aten._efficient_attention_forward(
        q, k, v, None, None, None, 5, 7, 0.0, 0, True
    )
    args = (None, out, None, None, 5, 7, lse, 0.0, seed, offset, 0, False)
    aten._efficient_attention_backward(out, q, k, v, *args)


@pytest.mark.parametrize(
    ("kernels", "heads_first"),
    [
        (_cpu_flash, True),
        (_flash, True),
        (_efficient, True),
        (_cudnn, True),
        (_flash_kernel, False),  # the kernels under SDPA take (B, N, H, D)
        (_efficient_kernel, False),
    ],
    ids=lambda v: getattr(v, "__name__", str(v)).strip("_"),
)
def test_fused_attention_kernels_forward_and_backward(kernels, heads_first: bool) -> None:
    """Each CPU and CUDA attention kernel pair, run on meta tensors: B=2, H=3, Nq=5, Nk=7,
    Dqk=4, Dv=6. Forward 2 x 3 x 5 x 7 x (4 + 6) = 2100 MACs; backward twice that: dQ, dK
    (Nq x Nk x Dqk each) and dP, dV (Nq x Nk x Dv each)."""
    if heads_first:
        q, k, v = _meta(2, 3, 5, 4), _meta(2, 3, 7, 4), _meta(2, 3, 7, 6)
    else:
        q, k, v = _meta(2, 5, 3, 4), _meta(2, 7, 3, 4), _meta(2, 7, 3, 6)
    with MacCounter() as counter:
        kernels(q, k, v)
    assert sorted(counter.by_op.values()) == [2100, 4200]
    assert counter.uncounted == {}


@pytest.fixture(params=[False, True], ids=["non-reentrant", "reentrant"])
def reentrant(request: pytest.FixtureRequest):
    before = timm.layers.use_reentrant_ckpt()
    timm.layers.set_reentrant_ckpt(request.param)
    yield request.param
    timm.layers.set_reentrant_ckpt(before)


def test_grad_checkpointing_recompute_is_counted(reentrant: bool) -> None:
    """The checkpointed blocks' forward runs again in backward; the count shows it."""
    spec = vit_spec(TRAIN_SHAPES[0])
    x = torch.randn(2, 3, 32, 32)
    model = create_model(spec).train()
    plain = count_train_macs(model, (x,), cross_entropy)
    blocks = count_macs(model, (x,)).by_module  # the forward, module by module
    model.set_grad_checkpointing(True)
    checkpointed = count_train_macs(model, (x,), cross_entropy)
    assert checkpointed.forward.macs == plain.forward.macs
    assert checkpointed.backward.macs == plain.backward.macs + checkpointed.recompute
    # torch's non-reentrant checkpoint stops re-running a block once every tensor its backward
    # needs is back: the last linear's output is needed by none, so fc2 is not run again
    skipped = 0 if reentrant else blocks["blocks.0.mlp.fc2"] + blocks["blocks.1.mlp.fc2"]
    assert checkpointed.recompute == blocks["blocks"] - skipped > 0
