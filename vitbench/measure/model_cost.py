"""Static cost of a model spec: parameters, tokens, and the MACs of a forward pass and of a
training step, counted without weights in memory.

The model is built on the meta device (tensors with shapes and no storage), so counting a
ViT-22B-shaped model needs neither its 88 GB of weights nor time to initialise them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from vitbench.measure.flops import MacCount, TrainMacCount, count_macs, count_train_macs
from vitbench.measure.params import count_params
from vitbench.measure.tokens import TokenReader
from vitbench.zoo import ModelSpec, create_model, default_input_size


@dataclass
class ModelCost:
    params: int
    params_trainable: int
    tokens: int | None  # token positions entering the first attention layer (see flops.md)
    tokens_at: str | None  # the module they were read at, e.g. "stages.0.blocks.0.attn"
    input_size: tuple[int, ...]  # per-sample input shape, e.g. (3, 224, 224) or (seq_len,)
    macs: int | None = None  # for the whole batch
    activations: int | None = None
    uncounted: dict[str, int] = field(default_factory=dict)
    count: MacCount | None = None
    train_macs: int | None = None  # per sample: forward and backward of one training step
    train: TrainMacCount | None = None  # that step, whole batch, by pass and operator


def example_inputs(
    model: nn.Module,
    spec: ModelSpec,
    batch_size: int,
    device: str | torch.device,
    *,
    channels_last: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Inputs for one forward pass: the model's own ``example_inputs`` or a random image batch
    (in channels-last memory format when asked: images only)."""
    if hasattr(model, "example_inputs"):
        inputs = tuple(model.example_inputs(batch_size, device=device))
    else:
        c, h, w = default_input_size(model, spec)
        inputs = (torch.randn(batch_size, c, h, w, device=device),)
    if channels_last and inputs[0].dim() == 4:
        inputs = (inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])
    return inputs


def count_model(
    spec: ModelSpec,
    *,
    batch_size: int = 1,
    macs: bool = True,
    train: bool = False,
    device: str | torch.device = "meta",
    model: nn.Module | None = None,
) -> ModelCost:
    """Parameters, tokens and (optionally) MACs of ``spec`` for one forward pass at ``batch_size``.

    ``train`` also counts one training step (forward, the training step's loss, backward; no
    optimizer step) in train mode, as ``train_macs`` per sample. ``device="meta"`` (the
    default) needs no memory for weights; ``"cpu"`` or ``"cuda"`` count the same operators on
    real tensors (the count must not depend on it). Pass ``model`` to count an already-built
    model instead of building one from the spec (gradient checkpointing set on it counts).
    """
    if model is None:
        model = create_model(spec, device=device)
    params, trainable = count_params(model)
    inputs = example_inputs(model, spec, batch_size, device)
    reader = TokenReader(model, batch_size)
    try:
        count = count_macs(model, inputs) if macs else None
        step = _count_train_step(model, inputs) if train else None
        if not (macs or train):
            with torch.no_grad():
                model(*inputs)
    finally:
        reader.remove()
    tokens, tokens_at = reader.tokens(model)
    return ModelCost(
        params=params,
        params_trainable=trainable,
        tokens=tokens,
        tokens_at=tokens_at,
        input_size=tuple(inputs[0].shape[1:]),
        macs=count.macs if count else None,
        activations=count.activations if count else None,
        uncounted=count.uncounted if count else {},
        count=count,
        train_macs=step.macs // batch_size if step else None,
        train=step,
    )


def _count_train_step(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> TrainMacCount:
    """One training step counted in train mode; the model's mode is restored after."""
    was_training = model.training
    try:
        return count_train_macs(model.train(), inputs, _step_loss(model))
    finally:
        model.train(was_training)


def _step_loss(model: nn.Module) -> Callable[[object], torch.Tensor]:
    """The timed training step's loss (train_step): cross-entropy for logits, else mean square."""
    # imported here: train_step imports this module
    from vitbench.measure.train_step import is_logits, step_loss

    def loss(output: object) -> torch.Tensor:
        labels = None
        if isinstance(output, torch.Tensor) and is_logits(model, output):
            # (B,) labels; their values do not change the count, so no random draw is spent
            labels = torch.zeros(output.shape[0], dtype=torch.long, device=output.device)
        return step_loss(output, labels)

    return loss
