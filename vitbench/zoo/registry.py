"""Registry of vitbench's own from-scratch models, looked up by name beside timm's.

A factory registered here takes timm-style keyword arguments (``img_size``, ``in_chans``,
``num_classes`` and any architecture override such as ``patch_size`` or ``depth``) and returns
a ``torch.nn.Module``. Names carry a ``scratch_`` prefix and mirror timm's where a timm
counterpart exists (``scratch_vit_base_patch16_224``).

As in timm, this module imports none of the models: each model module registers its factories
when it is imported, and the package (``vitbench.zoo``) imports them, so the registry is full
wherever the zoo is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from torch import nn

Factory = Callable[..., "nn.Module"]
F = TypeVar("F", bound=Factory)

_REGISTRY: dict[str, Factory] = {}


def register_model(fn: F) -> F:
    """Decorator: register ``fn`` under its own name (which must start with ``scratch_``)."""
    name = fn.__name__
    if not name.startswith("scratch_"):
        raise ValueError(f"from-scratch model names start with 'scratch_': {name}")
    _REGISTRY[name] = fn
    return fn


def scratch_names() -> list[str]:
    """The registered names, sorted."""
    return sorted(_REGISTRY)


def get_factory(name: str) -> Factory | None:
    """The factory registered under ``name``, or None."""
    return _REGISTRY.get(name)
