"""Token reduction as a transform of a built model: merging (ToMe, Bolya et al. 2023) and
pruning (EViT, Liang et al. 2022) for timm's ``VisionTransformer`` and vitbench's own ViT.

Torch-free at import; the transforms load torch and timm when they run. A reduced model keeps
its per-forward state (token sizes, and sources when ``trace_source`` is set) in
``model.token_reduction_state``, a :class:`~vitbench.token_reduction.state.TokenState`.
See docs/methodology/token_reduction.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vitbench.token_reduction.settings import TokenReduction

if TYPE_CHECKING:
    from torch import nn

__all__ = ["TokenReduction", "apply_token_reduction", "planned_tokens"]


def apply_token_reduction(
    model: nn.Module, reduction: TokenReduction, *, model_name: str | None = None
) -> list[int]:
    """Transform ``model`` in place; return the tokens entering each block (prefix included)
    for one image at the model's built size.

    An inactive reduction leaves a plain model as it is (and turns a reduced one back into
    the plain model). One-line :class:`~vitbench.errors.VitbenchError` for bad values, an
    ``r`` too large for the tokens left, or a model family the transforms do not support.
    """
    from vitbench.token_reduction.families import transform

    reduction.validate()
    return transform(model, reduction, model_name or type(model).__name__)


def planned_tokens(model: nn.Module, reduction: TokenReduction) -> list[int]:
    """The tokens entering each block without transforming (same rule), for records."""
    from vitbench.token_reduction.families import planned

    reduction.validate()
    return planned(model, reduction, type(model).__name__)
