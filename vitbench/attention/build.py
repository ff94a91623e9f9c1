"""The model an attention analysis builds and holds: its spec from the options, seeded
random weights, and its parameters frozen while the head gates take gradients.

Shared by the analysis of images (:mod:`vitbench.attention.analysis`) and of text
(:mod:`vitbench.attention.text`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from vitbench.attention.options import AttentionOptions
from vitbench.errors import VitbenchError
from vitbench.zoo import ModelSpec, load_imports, resolve_name


@contextmanager
def seeded(seed: int, device: str) -> Iterator[None]:
    """torch's random streams (the CPU's, and ``device``'s when it is a GPU) start from
    ``seed`` inside, and are the caller's again after."""
    dev = torch.device(device)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else [], device_type=dev.type):
        torch.manual_seed(seed)
        yield


def model_spec(model: str | ModelSpec, opts: AttentionOptions) -> ModelSpec:
    """The spec to build: a name with the options' sizes, or a spec they fill but never change.

    An option that a given spec also sets, to another value, is refused.
    """
    load_imports(opts.imports)
    spec = ModelSpec(resolve_name(model)) if isinstance(model, str) else model
    for key in ("img_size", "num_classes"):
        mine, its = getattr(opts, key), getattr(spec, key)
        if mine is not None and its is not None and mine != its:
            raise VitbenchError(f"{key} {mine} differs from the spec's {its}: give it in one place")
    clash = [k for k, v in opts.model_kwargs.items() if spec.kwargs.get(k, v) != v]
    if clash:
        raise VitbenchError(
            f"model_kwargs {', '.join(clash)} differ from the spec's: give them in one place"
        )
    reduction = opts.reduction()
    if None not in (reduction, spec.reduction) and reduction != spec.reduction:
        raise VitbenchError("tome and prune differ from the spec's reduction: give it in one place")
    return dataclasses.replace(
        spec,
        img_size=opts.img_size if spec.img_size is None else spec.img_size,
        num_classes=opts.num_classes if spec.num_classes is None else spec.num_classes,
        kwargs={**opts.model_kwargs, **spec.kwargs},
        input_size=spec.input_size or opts.input_size,
        reduction=spec.reduction or reduction,
    )


def refuse_for_module(opts: AttentionOptions) -> None:
    """A built module has its weights and shape: the options that make them cannot apply."""
    if opts.pretrained or opts.checkpoint is not None:
        raise VitbenchError(
            "a built module carries its own weights; pretrained and checkpoint apply to a "
            "model name or spec"
        )
    if opts.num_classes is not None or opts.model_kwargs:
        raise VitbenchError(
            "a built module has its shape already; num_classes and model_kwargs apply to a "
            "model name or spec"
        )


@contextmanager
def frozen(net: nn.Module) -> Iterator[None]:
    """No parameter of ``net`` needs a gradient inside (only the head gates do); then restored."""
    saved = [p.requires_grad for p in net.parameters()]
    try:
        for p in net.parameters():
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in zip(net.parameters(), saved, strict=True):
            p.requires_grad_(flag)
