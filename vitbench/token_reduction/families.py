"""Which models the transforms support, and the transform itself: the classes of a model's
blocks and attention modules swapped in place for reducing subclasses, or swapped back."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from torch import nn

from vitbench.errors import VitbenchError
from vitbench.token_reduction import scratch_vit, timm_vit
from vitbench.token_reduction.plan import plan_blocks
from vitbench.token_reduction.settings import TokenReduction
from vitbench.token_reduction.state import TokenState

FAMILIES: tuple[ModuleType, ...] = (timm_vit, scratch_vit)
#: the model attribute that holds the per-forward state of a reduced model
STATE_ATTR = "token_reduction_state"


@dataclass(frozen=True)
class Family:
    """A supported model's blocks, its tokens at the built size and its class swaps."""

    blocks: list[nn.Module]
    tokens: int  # entering the first block, prefix included
    prefix: int
    swaps: dict[type, type]  # original class -> reducing subclass


def _method(reduction: TokenReduction) -> str:
    if reduction.prunes:
        return "token pruning"
    return "token merging" if reduction.merges else "token reduction"


def _unknown_part(blocks: list[nn.Module], known: set[type]) -> str | None:
    """The class name of the first block, or block's attention, of a class not ``known``."""
    for block in blocks:
        for part in (block, getattr(block, "attn", None)):
            if type(part) not in known:
                return type(part).__name__
    return None


def find_family(model: nn.Module, reduction: TokenReduction, who: str) -> Family:
    """The family of ``model``; a one-line error naming what it is when none fits."""
    method = _method(reduction)
    for family in FAMILIES:
        found = family.blocks(model, method, who)
        if found is None:
            continue
        odd = _unknown_part(found, set(family.SWAPS) | set(family.SWAPS.values()))
        if odd is not None:
            raise VitbenchError(
                f"{method} supports {family.LABEL} built of its standard blocks and "
                f"attention; {who} has {odd}"
            )
        tokens, prefix, class_token = family.tokens(model)
        if reduction.prunes and not class_token:
            raise VitbenchError(
                f"token pruning ranks tokens by the class token's attention; {who} has none"
            )
        return Family(found, tokens, prefix, family.SWAPS)
    kind = type(model).__name__
    raise VitbenchError(
        f"{method} supports {' and '.join(f.LABEL for f in FAMILIES)}, "
        f"not {kind}{'' if who == kind else f' ({who})'}"
    )


def planned(model: nn.Module, reduction: TokenReduction, who: str) -> list[int]:
    """Tokens entering each block of ``model`` under ``reduction``, prefix included."""
    family = find_family(model, reduction, who)
    return plan_blocks(reduction, len(family.blocks), family.tokens, family.prefix, who)[1]


def transform(model: nn.Module, reduction: TokenReduction, who: str) -> list[int]:
    """Swap ``model``'s classes in place (back, for an inactive reduction); the tokens entering
    each block."""
    family = find_family(model, reduction, who)
    depth = len(family.blocks)
    plans, counts = plan_blocks(reduction, depth, family.tokens, family.prefix, who)
    if not reduction.active:
        _restore(model, family)
        return counts
    state = TokenState(depth)
    for block, plan in zip(family.blocks, plans, strict=True):
        for module in (block, block.attn):
            module.__class__ = family.swaps.get(type(module), type(module))
        block.token_plan, block.token_state = plan, state
    setattr(model, STATE_ATTR, state)
    return counts


def _restore(model: nn.Module, family: Family) -> None:
    """Undo a transform: the original classes, no plans, no state (nothing to do on a model
    never transformed)."""
    originals = {sub: base for base, sub in family.swaps.items()}
    for block in family.blocks:
        for module in (block, block.attn):
            module.__class__ = originals.get(type(module), type(module))
        for attr in ("token_plan", "token_state"):
            block.__dict__.pop(attr, None)
    model.__dict__.pop(STATE_ATTR, None)
