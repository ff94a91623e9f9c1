"""What token reduction to apply: merging (ToMe) or pruning (EViT), as one frozen value.

Torch-free, so that option parsing can build and check it without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from vitbench.errors import VitbenchError
from vitbench.options import one_of

#: what a record's ``reduction`` field says: the plain model, merging (ToMe), pruning (EViT)
NONE, TOME, PRUNE = "none", "tome", "prune"
#: ToMe's schedules of a single r: the same r in every block, or the paper's linear decrease
SCHEDULES = ("constant", "decreasing")


def _count(value: object) -> bool:
    """A whole number >= 0 (booleans are not counts)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


@dataclass(frozen=True)
class TokenReduction:
    """Token merging (``tome_r``) or token pruning (``prune_keep``); one at a time."""

    tome_r: int | tuple[int, ...] | None = None  # constant r, or one r per block
    tome_schedule: str = "constant"  # "constant" | "decreasing" (ignored for a per-block tuple)
    proportional: bool = True  # proportional attention (ToMe)
    prune_keep: float | None = None  # EViT keep rate, in (0, 1]
    prune_layers: tuple[int, ...] | None = None  # blocks (0-based) that prune; None: EViT's

    def validate(self) -> None:
        """Raise a one-line :class:`VitbenchError` for values no model can use."""
        r = self.tome_r
        if isinstance(r, (tuple, list)):
            if not all(_count(v) for v in r):
                raise VitbenchError(f"tome_r must list whole numbers >= 0, got {tuple(r)}")
        elif r is not None and not _count(r):
            raise VitbenchError(f"tome_r must be a whole number of tokens >= 0, got {r}")
        one_of("tome_schedule", self.tome_schedule, SCHEDULES)
        keep = self.prune_keep
        if keep is not None and not (isinstance(keep, (int, float)) and 0 < keep <= 1):
            raise VitbenchError(f"prune_keep must be a keep rate in (0, 1], got {keep}")
        layers = self.prune_layers
        if layers is not None and not all(_count(v) for v in layers):
            raise VitbenchError(f"prune_layers must be block indices >= 0, got {tuple(layers)}")
        if self.merges and self.prunes:
            raise VitbenchError(
                "tome_r and prune_keep cannot be combined: merging and pruning are separate points"
            )

    @property
    def merges(self) -> bool:
        """Some block merges tokens (an r above 0)."""
        r = self.tome_r
        if isinstance(r, (tuple, list)):
            return any(v > 0 for v in r)
        return r is not None and r > 0

    @property
    def prunes(self) -> bool:
        """Some block prunes tokens (a keep rate below 1 at one block or more)."""
        keep, layers = self.prune_keep, self.prune_layers
        return keep is not None and keep < 1 and (layers is None or len(layers) > 0)

    @property
    def active(self) -> bool:
        """Anything to do: r = 0 everywhere and keep rate 1 (or none) leave a model as it is."""
        return self.merges or self.prunes
