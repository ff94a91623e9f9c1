"""One training step as the profile times it: forward, loss, backward, optimizer step, zero_grad.

The loss is cross-entropy against random labels (drawn once per step, seeded) when the model
answers with one (B, C) tensor of logits; for any other output (features, (B, N, C) tokens, a
tuple) it is the mean of the squares of every output element: a scalar that depends on each
element, so backward reaches every layer that made the output, as cross-entropy would.
See docs/methodology/memory.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from vitbench.errors import VitbenchError
from vitbench.measure.model_cost import example_inputs
from vitbench.measure.options import OPTIMIZERS
from vitbench.precision import PRECISIONS, autocast, check_precision
from vitbench.zoo import ModelSpec

#: SGD's momentum: one momentum buffer per parameter, so SGD too has state to count (timm's
#: benchmark.py adds Nesterov's look-ahead: one more element-wise pass per parameter)
SGD_MOMENTUM = 0.9


def build_optimizer(
    name: str, params: Sequence[nn.Parameter], lr: float = 1e-3
) -> torch.optim.Optimizer:
    """AdamW (torch's defaults) or SGD (momentum 0.9) over ``params``.

    The state is made on the first step; the learning rate does not change the step's cost.
    """
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=SGD_MOMENTUM)
    raise VitbenchError(f"unknown optimizer '{name}'; choose from {', '.join(OPTIMIZERS)}")


def enable_grad_checkpointing(model: nn.Module, name: str) -> None:
    """timm's ``set_grad_checkpointing(True)``; one line for a model without the switch."""
    switch = getattr(model, "set_grad_checkpointing", None)
    if switch is None:
        raise VitbenchError(f"{name} has no gradient checkpointing switch")
    try:
        switch(True)
    except (AssertionError, NotImplementedError) as exc:  # timm models that refuse it
        raise VitbenchError(f"{name} has no gradient checkpointing switch") from exc


def output_tensors(output: object) -> Iterator[torch.Tensor]:
    """The floating-point tensors in a model's output (nested tuples, lists and dicts)."""
    if isinstance(output, torch.Tensor):
        if output.is_floating_point():
            yield output
    elif isinstance(output, (tuple, list)):
        for item in output:
            yield from output_tensors(item)
    elif isinstance(output, dict):
        for item in output.values():
            yield from output_tensors(item)


def step_loss(output: object, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of (B, C) logits against ``labels``; without labels, mean square output."""
    if labels is not None:
        return nn.functional.cross_entropy(output.float(), labels)
    parts = list(output_tensors(output))
    if not parts:
        raise VitbenchError("the model's output has no floating-point tensor to train on")
    total = sum(t.float().square().sum() for t in parts)
    return total / sum(t.numel() for t in parts)


def is_logits(model: nn.Module, output: object) -> bool:
    """One (B, C) tensor, C the model's ``num_classes`` when it says (timm; 0 means features)."""
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        return False
    classes = getattr(model, "num_classes", None)
    return classes is None or classes == output.shape[1]


class TrainStep:
    """``step()`` runs one training step of ``model`` on fixed ``inputs``.

    The phases are methods too, so memory can be read between them: ``loss()`` (forward and
    loss under the precision's autocast), ``backward(loss)`` (scaled in fp16), ``update()``
    (optimizer step, then ``zero_grad(set_to_none=True)``, so the gradients die in the step).
    """

    def __init__(
        self,
        model: nn.Module,
        inputs: tuple[torch.Tensor, ...],
        *,
        optimizer: str = "adamw",
        precision: str = "fp32",
        lr: float = 1e-3,
        seed: int = 0,
    ) -> None:
        check_precision(precision, PRECISIONS)
        self.device = inputs[0].device
        if precision == "fp16" and self.device.type != "cuda":
            raise VitbenchError(f"fp16 training needs CUDA (a gradient scaler), not {self.device}")
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise VitbenchError(f"{type(model).__name__} has no trainable parameters")
        self.model = model.train()  # dropout, drop-path and norms as in training
        self.inputs = inputs
        self.precision = precision
        self.optimizer = build_optimizer(optimizer, params, lr)
        self.scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
        self.seed = seed
        self.labels: torch.Tensor | None = None  # (B,) drawn at the first classifier output

    def _labels_for(self, output: object) -> torch.Tensor | None:
        if self.labels is None and is_logits(self.model, output):
            b, c = output.shape
            gen = torch.Generator().manual_seed(self.seed)
            self.labels = torch.randint(c, (b,), generator=gen).to(self.device)
        return self.labels

    def loss(self) -> torch.Tensor:
        """Forward and loss: a scalar with a graph back to the weights."""
        with autocast(self.device.type, self.precision):
            output = self.model(*self.inputs)
            return step_loss(output, self._labels_for(output))

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def update(self) -> None:
        """Optimizer step (through the scaler in fp16), then the gradients are dropped."""
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def __call__(self) -> None:
        self.backward(self.loss())
        self.update()


def build_train_step(
    model: nn.Module,
    spec: ModelSpec,
    batch_size: int,
    *,
    device: torch.device | str,
    optimizer: str = "adamw",
    precision: str = "fp32",
    channels_last: bool = False,
    grad_checkpointing: bool = False,
    lr: float = 1e-3,
) -> TrainStep:
    """A step at ``batch_size`` on inputs made once, as ``forward_pass`` makes them."""
    if grad_checkpointing:
        enable_grad_checkpointing(model, spec.name)
    inputs = example_inputs(
        model, spec, batch_size, torch.device(device), channels_last=channels_last
    )
    return TrainStep(model, inputs, optimizer=optimizer, precision=precision, lr=lr)
