"""Which heads matter: mask one head at a time, or read the gradient of a gate on each head.

In these models the heads' outputs are concatenated, head after head, before the output
projection, so scaling the projection's input columns of one head by a gate acts on exactly
that head: gate 0 masks it, gate 1 leaves it be. The gate is put on the projection's weight
(``W[:, head h] * g_h``, a parametrization), not on its input, so it acts also where the model
applies the projection as a function of its weight (``nn.MultiheadAttention`` and torchvision's
Swin call ``F.linear(x, proj.weight)``): ``x (W g)^T = (x g) W^T``.

* Masking: the change in loss and in accuracy on a labelled set when one head is masked.
* Gate gradient (Michel, Levy and Neubig 2019, "Are Sixteen Heads Really Better than One?"):
  importance is the absolute gradient of the loss with respect to the head's gate at 1,
  accumulated over batches (as their code does, per batch), and normalised per layer by the
  layer's L2 norm.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from vitbench.attention.extract import AttentionLayer
from vitbench.errors import VitbenchError

_PROJECTION_NAMES = ("proj", "out_proj", "o_proj", "merge")


def output_projection(layer: AttentionLayer, model: nn.Module | None = None) -> nn.Linear:
    """The linear layer that mixes the concatenated heads of an attention module (the first
    linear layer of a projection that is a sequence, as LeViT's activation then linear).

    Hugging Face's BERT and RoBERTa keep it beside the module, not in it: the layer
    ``...attention.self`` is projected by ``...attention.output.dense``, found through ``model``.
    """
    for name in _PROJECTION_NAMES:
        proj = getattr(layer.module, name, None)
        if isinstance(proj, nn.Module) and not isinstance(proj, nn.Linear):
            proj = next((m for m in proj.modules() if isinstance(m, nn.Linear)), None)
        if isinstance(proj, nn.Linear) and proj.in_features % layer.num_heads == 0:
            return proj
    proj = _sibling_projection(layer, model)
    if proj is not None:
        return proj
    raise VitbenchError(
        f"cannot gate the heads of {layer.name} ({type(layer.module).__name__}): no output "
        f"projection named {' or '.join(_PROJECTION_NAMES)}; use importance none"
    )


def _sibling_projection(layer: AttentionLayer, model: nn.Module | None) -> nn.Linear | None:
    """``<parent>.output.dense`` of the layer's module (Hugging Face's BERT layout), if any."""
    parent, dot, _ = layer.name.split("#")[0].rpartition(".")
    if model is None or not dot:
        return None
    output = getattr(model.get_submodule(parent), "output", None)
    proj = getattr(output, "dense", None)
    fits = isinstance(proj, nn.Linear) and proj.in_features % layer.num_heads == 0
    return proj if fits else None


class _ColumnGate(nn.Module):
    """weight (out, heads * head_dim) -> the weight with head h's input columns times gate[h]."""

    def __init__(self, gate: torch.Tensor) -> None:
        super().__init__()
        self.gate = gate

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        heads = self.gate.numel()
        split = weight.unflatten(-1, (heads, weight.shape[-1] // heads))  # (out, heads, dim)
        return (split * self.gate.to(weight.dtype)[:, None]).flatten(-2)


class HeadGates:
    """Context manager: scales each head's input columns of the output projection by a gate.

    ``gates[i]`` is a (heads,) tensor for ``layers[i]``; set values to mask heads, or make them
    require grad to read the gradient of the loss with respect to each head. Leaving restores
    the projections' own weight parameters.
    """

    def __init__(
        self,
        layers: Sequence[AttentionLayer],
        requires_grad: bool = False,
        model: nn.Module | None = None,
    ) -> None:
        """``model``: the model the layers belong to, where a projection lies outside its layer
        (see :func:`output_projection`)."""
        self.layers = list(layers)
        self.projections = [output_projection(layer, model) for layer in self.layers]
        self.gates = [
            torch.ones(
                layer.num_heads,
                dtype=proj.weight.dtype,
                device=proj.weight.device,
                requires_grad=requires_grad,
            )
            for layer, proj in zip(self.layers, self.projections, strict=True)
        ]
        self._gated: list[nn.Linear] = []

    def __enter__(self) -> HeadGates:
        for gate, proj in zip(self.gates, self.projections, strict=True):
            parametrize.register_parametrization(proj, "weight", _ColumnGate(gate), unsafe=True)
            self._gated.append(proj)
        return self

    def __exit__(self, *exc: object) -> None:
        for proj in self._gated:
            parametrize.remove_parametrizations(proj, "weight", leave_parametrized=False)
        self._gated.clear()


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed cross-entropy: per-batch gradients add up over batches."""
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise VitbenchError("head importance needs a classifier: the model returns no logits")
    return F.cross_entropy(logits.float(), labels, reduction="sum")


def normalise_per_layer(scores: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Divide each layer's (heads,) scores by their L2 norm (Michel et al.); zeros stay zero."""
    return [s / s.norm().clamp_min(1e-20) for s in scores]


@torch.no_grad()
def head_mask_importance(
    model: nn.Module,
    layers: Sequence[AttentionLayer],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Loss increase and accuracy drop when each head alone is masked, per layer (heads,).

    One forward per head and batch, plus one unmasked: (layers x heads + 1) x batches forwards.
    """
    batches = list(batches)
    gates = HeadGates(layers, model=model)

    def loss_and_correct() -> tuple[float, float]:
        loss = correct = 0.0
        for x, y in batches:
            logits = model(x)
            loss += float(classification_loss(logits, y))
            correct += float((logits.argmax(-1) == y).sum())
        return loss, correct

    n = sum(len(y) for _, y in batches)
    with gates:
        base_loss, base_correct = loss_and_correct()
        d_loss = [torch.zeros(layer.num_heads) for layer in layers]
        d_acc = [torch.zeros(layer.num_heads) for layer in layers]
        for i, layer in enumerate(layers):
            for h in range(layer.num_heads):
                gates.gates[i][h] = 0.0
                loss, correct = loss_and_correct()
                gates.gates[i][h] = 1.0
                d_loss[i][h] = (loss - base_loss) / n
                d_acc[i][h] = (base_correct - correct) / n
    return d_loss, d_acc
