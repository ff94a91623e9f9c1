"""Options shared by every command that builds a model: packages to import, the input size.

One home for each (see :mod:`vitbench.options`): ``profile``, ``analyze attention`` and
``train`` make their fields with these functions. Torch-free: the command line imports it at
start-up.
"""

from __future__ import annotations

from typing import Any

from vitbench.errors import VitbenchError
from vitbench.options import float_list, int_list, option

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


TOME_HELP = (
    "Token merging (ToMe, Bolya et al. 2023): tokens merged in every block after attention, r; "
    "0 merges none."
)
PRUNE_HELP = (
    "Token pruning (EViT, Liang et al. 2022): the share of tokens kept at each pruning layer, "
    "in (0, 1]."
)
POINTS_HELP = " A comma list sweeps: each value is a point, and the plain model is always one."


def tome_option(*, points: bool = False, lead: str = "") -> Any:
    """The ``tome`` field: r of token merging, one value or (``points``) a comma list of them;
    ``lead`` opens the help (what the points are of)."""
    if not points:
        return option(None, flags=("--tome",), help=lead + TOME_HELP)
    return option(
        (None,),
        flags=("--tome",),
        help=lead + TOME_HELP + POINTS_HELP,
        parse=int_list("tome_r", positive=False),
    )


def prune_option(*, points: bool = False, lead: str = "") -> Any:
    """The ``prune`` field: EViT's keep rate, one value or (``points``) a comma list of them."""
    if not points:
        return option(None, flags=("--prune",), help=lead + PRUNE_HELP)
    return option(
        (None,),
        flags=("--prune",),
        help=lead + PRUNE_HELP + POINTS_HELP,
        parse=float_list("prune_keep"),
    )


def tome_schedule_option() -> Any:
    """The ``tome_schedule`` field: how r runs over the blocks."""
    return option(
        "constant",
        help="How token merging's r runs over the blocks: constant, or decreasing (ToMe's "
        "schedule, from 2r down to 0).",
    )


def proportional_attn_option() -> Any:
    """The ``proportional_attn`` field: ToMe's proportional attention, on by default."""
    return option(
        True,
        help="Token merging's proportional attention: each token's log size added to the "
        "attention logits (ToMe's default).",
    )
