"""Which devices a command can run on: one check for profile, train and analyze."""

from __future__ import annotations

from collections.abc import Sequence

from vitbench.errors import VitbenchError

#: device types that train and analyze (and time) on real hardware; an index may follow: cuda:1
COMPUTE_DEVICES = ("cpu", "cuda")


def check_device(device: str, allowed: Sequence[str] = COMPUTE_DEVICES) -> str:
    """The type of ``device``; one line if it is not among ``allowed`` or is CUDA without one."""
    import torch

    try:
        kind = torch.device(device).type
    except RuntimeError:
        kind = None
    if kind not in allowed:
        raise VitbenchError(f"unknown device '{device}'; choose from {', '.join(allowed)}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise VitbenchError(f"device '{device}' asked for, but torch sees no CUDA device here")
    return kind


def resolve_device(device: str | None) -> str:
    """``device``, or for None the default every command shares: cuda when available, else cpu."""
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
