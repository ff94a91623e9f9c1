"""What `vitbench analyze attention` measures and how: one dataclass, also the command's options.

Torch-free at import, so the command line can load it at start-up; :meth:`validate` loads torch
(for the device, and the choices kept beside the rollout and the clustering) only when it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitbench.device import check_device, resolve_device
from vitbench.errors import CheckpointError, VitbenchError
from vitbench.model_options import (
    check_input_size,
    imports_option,
    input_size_option,
    proportional_attn_option,
    prune_option,
    tome_option,
    tome_schedule_option,
)
from vitbench.options import at_least, one_of, option, parse_kwargs

if TYPE_CHECKING:
    from vitbench.token_reduction import TokenReduction

#: how rollout fuses the heads of a layer (Abnar & Zuidema use the mean)
FUSIONS = ("mean", "max", "min")
#: how head clusters are drawn in two dimensions
PROJECTIONS = ("pca", "tsne")
#: how head importance is measured (Michel et al.): gate gradients, masking, both, or not at all
IMPORTANCE = ("gradient", "mask", "both", "none")

IMPORTANCE_HELP = (
    "Head importance: gradient (Michel et al. gate gradient), mask (one head at a time, "
    "layers x heads extra forwards), both, none."
)
RENORMALISE_HELP = (
    "Rescale rows to sum to one after dropping prefix tokens (default: as the ViT authors, "
    "not renormalised)."
)


@dataclass(frozen=True)
class AttentionOptions:
    """The model to build, the images to take and what to measure on them."""

    n_images: int = option(32, flags=("--n-images", "-n"), help="Images to analyse.")
    batch_size: int = option(8, flags=("--batch-size", "-b"), help="Images per forward.")
    img_size: int | None = option(None, help="Input size override (pixels).")
    num_classes: int | None = option(None, help="Classifier classes (e.g. 10 for digits).")
    model_kwargs: dict[str, Any] = option(
        default_factory=dict, parse=parse_kwargs, help="timm keyword overrides, e.g. 'depth=6'."
    )
    input_size: tuple[int, int, int] | None = input_size_option()
    imports: list[str] | None = imports_option()
    tome: Sequence[int | None] = tome_option(points=True, lead="Analyses at token merging r. ")
    tome_schedule: str = tome_schedule_option()
    proportional_attn: bool = proportional_attn_option()
    prune: Sequence[float | None] = prune_option(points=True, lead="Analyses at pruning. ")
    renormalise: bool = option(False, help=RENORMALISE_HELP)
    fusion: str = option("mean", help="Rollout head fusion: mean, max or min.")
    discard_ratio: float = option(
        0.0, help="Rollout: zero this share of each row's lowest weights (never the class token)."
    )
    importance: str = option("gradient", help=IMPORTANCE_HELP)
    projection: str = option("pca", help="2-D projection of head clusters: pca or tsne.")
    n_clusters: int | None = option(
        None, flags=("--clusters",), help="Number of head clusters (default: by silhouette)."
    )
    n_overlays: int = option(6, flags=("--overlays",), help="Images shown with rollout overlays.")
    device: str | None = option(None, help="cpu or cuda (default: cuda when available).")
    pretrained: bool = option(False, help="Load timm's pretrained weights.")
    checkpoint: Path | str | None = option(None, help="Weights file (safetensors or torch).")
    seed: int = option(0, help="Seed of the random initialisation and of the sample photos' crops.")

    def __post_init__(self) -> None:
        for name in ("tome", "prune"):  # one value, from Python, is a list of one point
            value = getattr(self, name)
            if value is None or isinstance(value, (int, float)):
                object.__setattr__(self, name, (value,))
            else:
                object.__setattr__(self, name, tuple(value))

    def validate(self) -> None:
        """Raise :class:`VitbenchError` for options no analysis can use; builds nothing."""
        check_device(self.resolved_device())
        one_of("fusion", self.fusion, FUSIONS)
        one_of("importance", self.importance, IMPORTANCE)
        one_of("projection", self.projection, PROJECTIONS)
        if not 0 <= self.discard_ratio < 1:
            raise VitbenchError(f"discard_ratio must be in [0, 1), got {self.discard_ratio}")
        for name, low in (("n_images", 1), ("batch_size", 1), ("img_size", 1), ("seed", 0)):
            at_least(name, getattr(self, name), low)
        at_least("num_classes", self.num_classes, 0)
        at_least("n_clusters", self.n_clusters, 1)
        at_least("n_overlays", self.n_overlays, 0)
        check_input_size(self.input_size)
        self.points()
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise CheckpointError(f"checkpoint not found: {self.checkpoint}")

    def points(self) -> list[TokenReduction | None]:
        """The token-reduction points, checked, as profile sweeps them: the plain model (None)
        first, then each ``tome`` r, then each ``prune`` keep rate."""
        from vitbench.zoo.reduction import reduction_points

        return reduction_points(
            self.tome,
            self.prune,
            schedule=self.tome_schedule,
            proportional=self.proportional_attn,
        )

    def at_points(self) -> list[AttentionOptions]:
        """These options once per point, each naming that point alone."""
        return [
            replace(
                self,
                tome=(None if p is None or p.tome_r is None else p.tome_r,),
                prune=(None if p is None else p.prune_keep,),
            )
            for p in self.points()
        ]

    def reduction(self) -> TokenReduction | None:
        """The one token merging or pruning the model runs with (None: the plain model)."""
        points = self.points()
        if len(points) > 2:
            raise VitbenchError(
                "analyze_attention analyses one point: give one tome or prune value "
                "(analyze_attention_points analyses several)"
            )
        return points[-1]

    def resolved_device(self) -> str:
        """``device``, or cuda when torch sees one, else cpu."""
        return resolve_device(self.device)

    @property
    def gradient_importance(self) -> bool:
        return self.importance in ("gradient", "both")

    @property
    def mask_importance(self) -> bool:
        return self.importance in ("mask", "both")


def check_plots_dir(path: str | Path) -> None:
    """Refuse a plots_dir that is, or lies under, something other than a directory."""
    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is not)"
        raise VitbenchError(f"plots_dir {path} is not a directory{where}")
