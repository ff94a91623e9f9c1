"""Progressive resizing: train on small images first, then larger ones, with one set of weights.

An image-size schedule ``SIZE:START,...`` (e.g. ``16:0,24:0.5,32:0.8``) names each image side
and the share of training at which it starts: epoch ``e`` of ``E`` trains at the last size whose
start is at most ``e / E``. A ViT changes size in place as timm's ``set_input_size`` does: the
patch grid follows the image and the learned position table is resampled to the new grid
(``timm.layers.resample_abs_pos_embed``, bicubic); the prefix tokens' rows are kept. The
optimizer's moments of that table are resampled alike, so AdamW carries on where it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from vitbench.errors import VitbenchError

if TYPE_CHECKING:
    from vitbench.train.config import TrainConfig


@dataclass(frozen=True)
class SizeSchedule:
    """Image sides and the share of training, in [0, 1), at which each starts (the first at 0)."""

    sizes: tuple[int, ...]
    starts: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> SizeSchedule:
        """``SIZE:START,...`` read and checked: sizes positive, starts rising from 0 below 1."""
        sizes, starts = [], []
        for item in text.split(","):
            size, _, start = item.partition(":")
            try:
                sizes.append(int(size))
                starts.append(float(start))
            except ValueError:
                raise VitbenchError(
                    f"img_size_schedule is SIZE:START,... (e.g. 16:0,24:0.5), not '{text}'"
                ) from None
        schedule = cls(tuple(sizes), tuple(starts))
        schedule.check()
        return schedule

    def check(self) -> None:
        """Raise for sizes that are not positive, or starts not rising from 0 within [0, 1)."""
        if min(self.sizes) < 1:
            raise VitbenchError(f"img_size_schedule sizes must be positive, got {self.sizes}")
        if self.starts[0] != 0:
            raise VitbenchError(f"img_size_schedule starts at 0, not {self.starts[0]}")
        rising = all(a < b for a, b in zip(self.starts, self.starts[1:], strict=False))
        if not rising or self.starts[-1] >= 1:
            raise VitbenchError(
                f"img_size_schedule starts must rise within [0, 1), got {self.starts}"
            )

    def size_at(self, epoch: int, epochs: int) -> int:
        """The image side of epoch ``epoch`` (0-based) of ``epochs``."""
        began = [s for s, t in zip(self.sizes, self.starts, strict=True) if epoch / epochs >= t]
        return began[-1]

    def check_epochs(self, epochs: int) -> None:
        """Raise when some size of the schedule would get no epoch of ``epochs``."""
        used = {self.size_at(e, epochs) for e in range(epochs)}
        idle = [s for s in self.sizes if s not in used]
        if idle:
            raise VitbenchError(
                f"img_size_schedule gives size {idle[0]} no epoch of {epochs}: "
                "start the sizes further apart or train more epochs"
            )

    def check_patch(self, patch: int) -> None:
        """Raise for a size the patches do not tile."""
        bad = [s for s in self.sizes if s % patch]
        if bad:
            raise VitbenchError(
                f"img_size_schedule size {bad[0]} is not a multiple of the patch size {patch}"
            )


def epoch_img_size(cfg: TrainConfig, epoch: int) -> int | None:
    """The image side of epoch ``epoch`` (0-based) of ``cfg``: its schedule's, else its
    ``img_size`` (None: the data's own)."""
    if cfg.img_size_schedule is None:
        return cfg.img_size
    return SizeSchedule.parse(cfg.img_size_schedule).size_at(epoch, cfg.epochs)


def _patch_size(model: nn.Module) -> int:
    """The side of the model's square patches; refuses a model that cannot change size."""
    from timm.models.vision_transformer import VisionTransformer as TimmViT

    from vitbench.zoo.scratch.vit import VisionTransformer

    if isinstance(model, VisionTransformer) and model.rel_pos is not None:
        raise VitbenchError("a ViT with relative position bias cannot change its image size")
    if not isinstance(model, TimmViT | VisionTransformer):
        raise VitbenchError(
            f"{type(model).__name__} cannot change its image size: img_size_schedule resizes "
            "timm's VisionTransformer and vitbench's scratch ViT"
        )
    return model.patch_embed.patch_size[0]


def check_resizable(model: nn.Module, schedule: SizeSchedule) -> None:
    """Raise unless ``model`` is a ViT that can change size and its patches tile every size."""
    schedule.check_patch(_patch_size(model))


def check_schedule_model(cfg: TrainConfig) -> None:
    """Raise unless ``cfg``'s model (built on the meta device) can take every size of its
    image-size schedule."""
    from vitbench.train.defaults import NATIVE
    from vitbench.zoo import create_model
    from vitbench.zoo.factory import with_checkpoint_spec

    schedule = SizeSchedule.parse(str(cfg.img_size_schedule))
    chans = cfg.in_chans or NATIVE[cfg.dataset][1]
    classes = 2  # any: the head does not change with the image
    spec = with_checkpoint_spec(cfg.model_spec(schedule.sizes[0], chans, classes), cfg.checkpoint)
    check_resizable(create_model(spec, device="meta"), schedule)


def _position_table(model: nn.Module) -> tuple[nn.Parameter | None, int]:
    """The learned position table ``(1, P + N, D)`` and its P prefix rows (None: nothing to
    resample)."""
    from vitbench.zoo.scratch.position import LearnedPositionEmbedding

    table = model.pos_embed
    if isinstance(table, LearnedPositionEmbedding):
        return table.weight, model.num_prefix_tokens
    if isinstance(table, nn.Parameter):  # timm's; no_embed_class: the prefix has no rows
        return table, 0 if model.no_embed_class else model.num_prefix_tokens
    return None, 0


def _set_scratch_grid(model: nn.Module, size: int) -> None:
    """vitbench's ViT: patch grid (and a fixed 2D sin-cos table's grid) for side ``size``."""
    from vitbench.zoo.scratch.position import SinCos2dPositionEmbedding

    embed = model.patch_embed
    embed.img_size = (size, size)
    embed.grid_size = (size // embed.patch_size[0], size // embed.patch_size[1])
    embed.num_patches = embed.grid_size[0] * embed.grid_size[1]
    if isinstance(model.pos_embed, SinCos2dPositionEmbedding):
        model.pos_embed.grid_size = embed.grid_size


def _hand_over(
    optimizer: torch.optim.Optimizer | None,
    old: nn.Parameter,
    new: nn.Parameter,
    resample: Callable[[Tensor], Tensor],
) -> None:
    """``optimizer`` trains ``new`` in place of ``old``, with ``old``'s AdamW moments resampled
    as the table is (the second clamped at 0: bicubic resampling can undershoot)."""
    if optimizer is None:
        return
    for group in optimizer.param_groups:
        group["params"] = [new if p is old else p for p in group["params"]]
    state = optimizer.state.pop(old, {})
    for name in ("exp_avg", "exp_avg_sq"):
        if name in state:
            state[name] = resample(state[name])
    if "exp_avg_sq" in state:
        state["exp_avg_sq"].clamp_(min=0)
    if state:
        optimizer.state[new] = state


@torch.no_grad()
def resize_model(
    model: nn.Module, size: int, optimizer: torch.optim.Optimizer | None = None
) -> None:
    """``model`` (a ViT) made to see ``size`` x ``size`` images, in place.

    timm's ViT resizes itself (``set_input_size``); vitbench's gets the same resampling of its
    table. The resampled table is a new Parameter (autograd and DDP keep the old one's shape),
    handed over to ``optimizer`` with its moments resampled alike.
    """
    SizeSchedule((size,), (0.0,)).check_patch(_patch_size(model))
    table, prefix = _position_table(model)
    old = model.patch_embed.grid_size
    if hasattr(model, "set_input_size"):  # timm's
        model.set_input_size(img_size=(size, size))
    else:
        _set_scratch_grid(model, size)
    new = model.patch_embed.grid_size
    if table is None or new == old:
        return
    from timm.layers import resample_abs_pos_embed

    def resample(t: Tensor) -> Tensor:  # (1, P + old_h * old_w, D) -> (1, P + h * w, D)
        return resample_abs_pos_embed(t, list(new), list(old), num_prefix_tokens=prefix)

    if not hasattr(model, "set_input_size"):
        model.pos_embed.weight = nn.Parameter(resample(table), table.requires_grad)
    _hand_over(optimizer, table, _position_table(model)[0], resample)
