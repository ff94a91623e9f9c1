"""Transfer learning: a linear probe (only the classification head trains), fine-tuning from
weights made for other classes (their head left out, a fresh one for the data's classes), and
layer-wise learning-rate decay (timm's, with a layer map for models timm cannot group).
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch
from torch import nn

from vitbench.errors import VitbenchError
from vitbench.zoo import ModelSpec, create_model
from vitbench.zoo.factory import with_checkpoint_spec
from vitbench.zoo.weights import check_fits, checkpoint_shapes, read_state_dict

#: where models keep their classifier when they have no timm ``get_classifier``
HEAD_NAMES = ("head", "head_dist", "heads", "fc", "classifier")


def head_modules(model: nn.Module, name: str) -> dict[str, nn.Module]:
    """The classification head(s) by module name (DeiT's distilled models have two); an error
    for a model with none that has parameters."""
    if hasattr(model, "get_classifier"):
        found = model.get_classifier()
        mods = list(found) if isinstance(found, (tuple, list)) else [found]
    else:
        mods = [m for n in HEAD_NAMES if isinstance(m := getattr(model, n, None), nn.Module)]
    names = {id(m): n for n, m in model.named_modules()}
    heads = {
        names[id(m)]: m for m in mods if id(m) in names and next(m.parameters(), None) is not None
    }
    if not heads:
        raise VitbenchError(f"{name} has no classification head with weights to train alone")
    return heads


def freeze_backbone(model: nn.Module, name: str) -> list[nn.Module]:
    """Freeze every parameter but the head's (a linear probe); returns the head modules, the
    only ones in training mode while the model trains."""
    heads = list(head_modules(model, name).values())
    model.requires_grad_(False)
    for head in heads:
        head.requires_grad_(True)
    return heads


def _head_keys(model: nn.Module, name: str) -> set[str]:
    """The state-dict keys of the model's head(s); none for a model without one."""
    try:
        heads = head_modules(model, name)
    except VitbenchError:
        return set()
    return {f"{prefix}.{key}" for prefix, head in heads.items() for key in head.state_dict()}


def create_student(
    spec: ModelSpec, device: torch.device, pretrained: bool, checkpoint: str | os.PathLike | None
) -> tuple[nn.Module, bool]:
    """The model to train, and whether its head is new: a checkpoint whose head does not fit the
    data's classes, or that has none (a pre-trained encoder), loads all but the head, which
    keeps its fresh initialisation (timm does the same for pretrained weights of other
    classes). Anything else that does not fit is an error.
    """
    if checkpoint is None:
        model = create_model(spec, device=device, pretrained=pretrained)
        published = getattr(model, "pretrained_cfg", {}).get("num_classes", spec.num_classes)
        return model, pretrained and published != spec.num_classes
    spec = with_checkpoint_spec(spec, checkpoint)
    shapes = checkpoint_shapes(checkpoint)
    meta = create_model(spec, device="meta")
    own = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    head = _head_keys(meta, spec.name)
    if all(shapes.get(k) == own[k] for k in head):
        return create_model(spec, device=device, checkpoint=checkpoint), False
    body = {k: v for k, v in shapes.items() if k not in head}
    check_fits(meta, {**body, **{k: own[k] for k in head}}, checkpoint)
    model = create_model(spec, device=device)
    weights = {k: v for k, v in read_state_dict(checkpoint).items() if k not in head}
    model.load_state_dict(weights, strict=False)  # checked: only the head's keys are missing
    return model, True


class _BlockLayers:
    """What timm's layer-wise decay reads of a model (``named_parameters``, ``group_matcher``),
    for a model with ``blocks`` but no ``group_matcher`` (vitbench's own): parameters before the
    blocks are layer 0, block i is layer i + 1, those after (final norm, head) the top layer."""

    def __init__(self, model: nn.Module, name: str) -> None:
        if not isinstance(getattr(model, "blocks", None), nn.Sequential | nn.ModuleList):
            raise VitbenchError(f"layer_decay needs a model with blocks to decay; {name} has none")
        self.model = model
        self.layer: dict[str, tuple[float, ...]] = {}
        last = 0.0
        for key, _ in model.named_parameters():
            block = re.match(r"blocks\.(\d+)\.", key)
            last = 1.0 + int(block[1]) if block else (float("inf") if last else 0.0)
            self.layer[key] = (last,)

    def named_parameters(self, *args: Any, **kwargs: Any):
        return self.model.named_parameters(*args, **kwargs)

    def group_matcher(self, coarse: bool = False):
        return self.layer.__getitem__


def layer_decay_groups(
    model: nn.Module, name: str, weight_decay: float, layer_decay: float
) -> list[dict[str, Any]]:
    """Parameter groups with timm's ``lr_scale`` (``layer_decay ** (top - layer)``) and weight
    decay off for biases, norms and the model's ``no_weight_decay`` set."""
    from timm.optim import param_groups_layer_decay

    grouped = model if hasattr(model, "group_matcher") else _BlockLayers(model, name)
    skip = model.no_weight_decay() if hasattr(model, "no_weight_decay") else ()
    return param_groups_layer_decay(
        grouped, weight_decay=weight_decay, no_weight_decay_list=skip, layer_decay=layer_decay
    )
