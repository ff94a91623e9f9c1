"""Options shared by every command that builds a model: packages to import, the input size.

One home for each (see :mod:`vitbench.options`): ``profile``, ``analyze attention`` and
``train`` make their fields with these functions. Torch-free: the command line imports it at
start-up.
"""

from __future__ import annotations

from typing import Any

from vitbench.errors import VitbenchError
from vitbench.options import option

INPUT_SIZE_HELP = (
    "Input C,H,W for a model that declares no size (a factory's or a built module); "
    "img_size still sets H,W where the model takes it."
)


IMPORTS_HELP = (
    "Import this package first, so the models it registers with timm are found by name "
    "(repeat for more)."
)


def imports_option() -> Any:
    """The ``imports`` field: packages imported before model names are resolved."""
    return option(None, flags=("--import",), help=IMPORTS_HELP)


def input_size_option() -> Any:
    """The ``input_size`` field: (C, H, W) of one sample, parsed from ``'3,224,224'``."""
    return option(None, help=INPUT_SIZE_HELP, parse=parse_input_size)


def parse_input_size(text: str) -> tuple[int, int, int] | None:
    """``'3,224,224'`` -> ``(3, 224, 224)``; '' -> None."""
    if not text.strip():
        return None
    try:
        size = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise VitbenchError(f"input_size must be C,H,W as integers, got '{text}'") from None
    check_input_size(size)
    return size  # type: ignore[return-value]


def check_input_size(size: Any) -> None:
    """Refuse an ``input_size`` that is not three positive integers (None passes)."""
    if size is None:
        return
    ok = isinstance(size, (tuple, list)) and len(size) == 3
    if not ok or not all(isinstance(v, int) and v > 0 for v in size):
        raise VitbenchError(f"input_size must be three positive integers C,H,W, got {size}")
