"""What a run predicts, and the places its loop differs by it.

The loop of :mod:`vitbench.train.run` (epochs, checkpoints, resume, records) is the same for
every task; a task gives it the data, the model, the loss, the scoring and what its records
and files add. :class:`Classification`, a label per image, is the default;
:class:`vitbench.segmentation.training.Segmentation`, a label per pixel, overrides each place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from vitbench.errors import VitbenchError
from vitbench.store import Recorder
from vitbench.train.config import TrainConfig
from vitbench.train.data import DataBundle, load_data
from vitbench.train.distributed import DistEnv
from vitbench.train.engine import EvalStats, evaluate
from vitbench.train.recipe import build_loss
from vitbench.train.resize import epoch_img_size
from vitbench.train.transfer import create_student
from vitbench.zoo import ModelSpec


class Classification:
    """A label per image: the zoo's model as it is, cross-entropy, accuracy."""

    #: whether a run's MACs are counted on the built model (a decoder the spec does not
    #: name), rather than on the spec's on the meta device
    counts_built_model = False

    def load(self, cfg: TrainConfig, epoch: int = 0) -> DataBundle:
        """The dataset ``cfg`` names, split, normalised and (the training split) augmented, at
        the image size of ``epoch`` (0-based)."""
        return load_data(
            cfg.dataset,
            img_size=epoch_img_size(cfg, epoch),
            in_chans=cfg.in_chans,
            **cfg.data_split(),
            **cfg.augmentation(),
        )

    def build(
        self, cfg: TrainConfig, data: DataBundle, device: torch.device
    ) -> tuple[ModelSpec, nn.Module, bool]:
        """The model's spec, the model shaped for ``data`` on ``device``, and whether its head
        is new (the weights started from were made for other classes)."""
        spec = cfg.model_spec(data.img_size, data.in_chans, data.num_classes)
        model, new_head = create_student(spec, device, cfg.pretrained, cfg.checkpoint)
        if cfg.grad_checkpointing:
            if not hasattr(model, "set_grad_checkpointing"):
                raise VitbenchError(f"{cfg.model} does not support gradient checkpointing")
            model.set_grad_checkpointing(True)
        return spec, model, new_head

    def loss(self, cfg: TrainConfig) -> nn.Module:
        return build_loss(cfg)

    def evaluate(
        self, model: nn.Module, loader: DataLoader, num_classes: int, env: DistEnv, precision: str
    ) -> EvalStats:
        """``model`` scored on every image of ``loader``'s split, over all processes."""
        return evaluate(model, loader, num_classes, env, precision)

    def epoch_fields(self, val: EvalStats) -> dict[str, Any]:
        """What a ``train_epochs`` row adds for the task (nothing for classification)."""
        return {}

    def run_fields(self, cfg: TrainConfig, test: EvalStats) -> dict[str, Any]:
        """What the ``train_runs`` row adds for the task (nothing for classification)."""
        return {}

    def write_files(
        self, model: nn.Module, data: DataBundle, rdir: Path, title: str, recorder: Recorder
    ) -> None:
        """The task's own files in the run's folder, beside the curves and confusion matrix
        (none for classification)."""


def task_for(cfg: TrainConfig) -> Classification:
    """The task ``cfg`` trains."""
    if cfg.task == "segmentation":
        from vitbench.segmentation.training import Segmentation

        return Segmentation()
    return Classification()
