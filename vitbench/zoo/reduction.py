"""Token reduction as the commands sweep it: the points, and the fields that name a row's point.

A point is the plain model, token merging at one ``r`` (ToMe) or token pruning at one keep
rate (EViT); the transforms are :mod:`vitbench.token_reduction`, applied by
:func:`vitbench.zoo.create_model` to a spec's ``reduction``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vitbench.token_reduction.settings import NONE, PRUNE, TOME

if TYPE_CHECKING:
    from torch import nn

    from vitbench.token_reduction import TokenReduction
    from vitbench.zoo import ModelSpec


def reduction_points(
    tome: Sequence[int | None],
    prune: Sequence[float | None],
    *,
    schedule: str = "constant",
    proportional: bool = True,
) -> list[TokenReduction | None]:
    """The plain model (None) first, then one merging point per ``r`` and one pruning point per
    keep rate; each checked (one-line errors). ``r = 0`` and a keep rate of 1 are the plain
    model, which is a point once."""
    from vitbench.token_reduction import TokenReduction

    TokenReduction(tome_schedule=schedule).validate()  # checked even where no r is given
    rs = [r for r in dict.fromkeys(tome) if r]
    keeps = [k for k in dict.fromkeys(prune) if k is not None]
    if not (rs or keeps):
        return [None]
    points = [
        TokenReduction(tome_r=r, tome_schedule=schedule, proportional=proportional) for r in rs
    ] + [TokenReduction(prune_keep=k) for k in keeps]
    for point in points:
        point.validate()
    return [None, *(p for p in points if p.active)]


def reduction_fields(reduction: TokenReduction | None) -> dict[str, Any]:
    """``reduction`` (none, tome or prune) and the parameters of the point."""
    if reduction is None or not reduction.active:
        return {"reduction": NONE}
    if reduction.prune_keep is not None:
        layers = reduction.prune_layers
        return {
            "reduction": PRUNE,
            "prune_keep": reduction.prune_keep,
            "prune_layers": None if layers is None else ",".join(map(str, layers)),
        }
    r = reduction.tome_r
    return {
        "reduction": TOME,
        "tome_r": r if isinstance(r, int) else ",".join(map(str, r)),
        "tome_schedule": reduction.tome_schedule,
        "proportional_attn": reduction.proportional,
    }


def tokens_text(tokens: Sequence[int]) -> str:
    """Tokens entering each block as comma text, e.g. ``'197,184,171'``."""
    return ",".join(str(int(n)) for n in tokens)


def tokens_per_layer(model: nn.Module, reduction: TokenReduction | None) -> str:
    """The tokens entering each block of ``model`` under ``reduction`` (None: the plain
    model's), as :func:`tokens_text`."""
    from vitbench.token_reduction import TokenReduction, planned_tokens

    return tokens_text(planned_tokens(model, reduction or TokenReduction()))


def check_reductions(specs: Sequence[ModelSpec]) -> None:
    """Apply each spec's token reduction to its model on the meta device, so that an ``r`` too
    large for the tokens, or a family the transforms do not support, is a one-line error
    before anything is measured or stored."""
    from vitbench.zoo import create_model

    for spec in specs:
        if spec.reduction is not None:
            create_model(spec, device="meta")
