"""What a segmentation run can be asked for, checked before anything is loaded (no torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vitbench.errors import VitbenchError
from vitbench.segmentation import DECODERS, NATIVE

if TYPE_CHECKING:
    from vitbench.train.config import TrainConfig

#: training options a segmentation run does not take: mixing and augmenting images apart from
#: their masks, token reduction (the patch grid must stay whole), image-size schedules (masks
#: are sized once), a classification head to probe or distil into, layer decay and gradient
#: checkpointing (set on an encoder, not on the encoder-decoder pair)
UNSUPPORTED = ("teacher", "mixup", "cutmix", "randaugment", "random_erasing", "freeze")
UNSUPPORTED += ("layer_decay", "train_tome", "train_prune", "tome", "prune", "img_size_schedule")
UNSUPPORTED += ("grad_checkpointing",)


def check_segmentation(cfg: TrainConfig) -> None:
    """Raise :class:`VitbenchError` for a dataset without masks, an unknown decoder, or an
    option a segmentation run cannot train with."""
    if cfg.dataset not in NATIVE:
        raise VitbenchError(
            f"segmentation needs a dataset with masks ({', '.join(NATIVE)}), not '{cfg.dataset}'"
        )
    if cfg.data_dir is not None and cfg.dataset != "ade20k":
        raise VitbenchError(f"data_dir is read only by ade20k; {cfg.dataset} is embedded")
    if cfg.decoder not in DECODERS:
        raise VitbenchError(f"decoder is one of {', '.join(DECODERS)}, not '{cfg.decoder}'")
    defaults = type(cfg)()
    given = [name for name in UNSUPPORTED if getattr(cfg, name) != getattr(defaults, name)]
    if given:
        raise VitbenchError(f"segmentation does not train with {', '.join(given)}")


def check_classification(dataset: str) -> None:
    """A dataset with masks is refused for classification, with the task it needs."""
    if dataset in NATIVE:
        raise VitbenchError(f"{dataset} holds masks, not image labels: it needs task segmentation")
