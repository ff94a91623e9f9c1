"""Head importance as record fields: the gate gradients a pass summed, and masking heads one
at a time (:mod:`vitbench.attention.importance`), normalised per layer.

Shared by the analysis of images and of text: both hand over what their pass gathered.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from vitbench.attention.extract import AttentionLayer
from vitbench.attention.importance import (
    HeadGates,
    classification_loss,
    head_mask_importance,
    normalise_per_layer,
)

#: the fields of each head, by (layer index, head)
ByHead = dict[tuple[int, int], dict[str, Any]]


def gate_gradients(
    gates: HeadGates,
    logits: torch.Tensor,
    labels: torch.Tensor,
    summed: list[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """|d loss / d gate| of one batch, per layer (heads,), added to ``summed`` when given."""
    grads = torch.autograd.grad(classification_loss(logits, labels), gates.gates)
    g = [gr.detach().abs().cpu() for gr in grads]
    return g if summed is None else [a + b for a, b in zip(summed, g, strict=True)]


def add_importance(
    head: ByHead,
    layers: Sequence[AttentionLayer],
    gate_grads: Sequence[torch.Tensor] | None,
    n_inputs: int,
    net: nn.Module,
    kept: Sequence[tuple[Any, torch.Tensor]] | None = None,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> None:
    """Fill ``head`` with importance from ``gate_grads`` (per layer (heads,), |d loss / d gate|
    summed over ``n_inputs`` inputs), and, given ``kept`` (inputs, labels), by masking each
    head of ``net`` in turn: a second pass of (layers x heads + 1) forwards."""
    if gate_grads is not None:
        normalised = normalise_per_layer(gate_grads)
        for layer, imp, raw in zip(layers, normalised, gate_grads, strict=True):
            for h in range(layer.num_heads):
                head[layer.index, h].update(
                    importance=float(imp[h]), importance_grad=float(raw[h] / n_inputs)
                )
    if kept is None:
        return
    if on_progress:
        on_progress(0, 1, "masking heads one at a time")
    d_loss, d_acc = head_mask_importance(net, layers, kept)
    normalised = normalise_per_layer(d_loss)
    for layer, imp, dl, da in zip(layers, normalised, d_loss, d_acc, strict=True):
        for h in range(layer.num_heads):
            head[layer.index, h].update(
                importance_mask=float(imp[h]),
                mask_loss_delta=float(dl[h]),
                mask_accuracy_delta=float(da[h]),
            )
