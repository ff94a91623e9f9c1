"""Training vision transformers: data, recipe, engine, checkpoints, sweeps.

Names are imported on first use, so ``vitbench.train.defaults`` (read by the command line's
help) loads without torch.
"""

from __future__ import annotations

import sys
from types import ModuleType
from typing import Any

from vitbench.lazy import lazy_names

_HOMES = {
    "DATASETS": "defaults",
    "DEFAULT_MODEL": "defaults",
    "DEFAULT_MODEL_KWARGS": "defaults",
    "DataBundle": "data",
    "load_data": "data",
    "TrainConfig": "config",
    "TrainResult": "run",
    "train": "run",
    "SweepResult": "sweep",
    "sweep": "sweep",
}

__all__ = sorted(_HOMES)


__getattr__ = lazy_names(__name__, _HOMES)


class _Package(ModuleType):
    """Keeps ``vitbench.train.sweep`` the function when the submodule of that name loads."""

    def __setattr__(self, name: str, value: Any) -> None:
        if not (name in _HOMES and isinstance(value, ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
