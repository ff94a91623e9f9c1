"""The numeric precisions vitbench runs at, and the autocast each one means.

Torch-free at import (the command line reads the names); torch loads when a context is made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from vitbench.errors import VitbenchError

#: what a forward pass runs at: tf32 is fp32 with TF32 matmuls (CUDA), fp16/bf16 are autocast
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
#: what a training run takes (fp16 adds a gradient scaler, on CUDA only)
TRAIN_PRECISIONS = ("fp32", "bf16", "fp16")
#: the precisions that run under ``torch.autocast``, and the dtype each casts to
AUTOCAST_DTYPES = {"fp16": "float16", "bf16": "bfloat16"}


def check_precision(precision: str, allowed: Sequence[str] = PRECISIONS) -> None:
    """One line for a precision that is not among ``allowed``."""
    if precision not in allowed:
        raise VitbenchError(f"unknown precision '{precision}'; choose from {', '.join(allowed)}")


def autocast(device_type: str, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for fp16/bf16 on ``device_type``; nothing for fp32 and tf32."""
    if precision not in AUTOCAST_DTYPES:
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=device_type, dtype=getattr(torch, AUTOCAST_DTYPES[precision]))
