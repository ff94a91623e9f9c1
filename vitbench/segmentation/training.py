"""What a segmentation run trains with, in the places the run's loop leaves to its task
(:mod:`vitbench.train.task`): its data, its model, its loss, its scores and its figure."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from vitbench.precision import autocast
from vitbench.segmentation import IGNORE_INDEX, OVERLAY_FIGURE
from vitbench.segmentation.data import load_masks
from vitbench.segmentation.metrics import class_iou, mean_iou, pixel_accuracy, pixel_confusion
from vitbench.segmentation.model import SegmentationModel, patch_grid
from vitbench.segmentation.plots import overlays
from vitbench.store import Recorder
from vitbench.train.config import TrainConfig
from vitbench.train.data import DataBundle
from vitbench.train.distributed import DistEnv, all_sum, all_sum_tensor
from vitbench.train.engine import EvalStats
from vitbench.train.task import Classification
from vitbench.zoo import ModelSpec

OVERLAY_IMAGES = 4  # test images shown


def check_inputs(cfg: TrainConfig) -> None:
    """The data can be read and the model is an encoder with a patch grid (on the meta
    device): a one-line error before anything is written."""
    from vitbench.zoo import create_model

    data = Segmentation().load(cfg)
    spec = cfg.model_spec(data.img_size, data.in_chans, data.num_classes)
    patch_grid(create_model(spec, device="meta"), cfg.model)


class Segmentation(Classification):
    """A label per pixel: an encoder with a decoder, per-pixel cross-entropy, mIoU."""

    counts_built_model = True  # the decoder counts too

    def load(self, cfg: TrainConfig, epoch: int = 0) -> DataBundle:
        """The dataset ``cfg`` names: images and masks, split and sized (one size throughout)."""
        return load_masks(
            cfg.dataset, img_size=cfg.img_size, in_chans=cfg.in_chans, **cfg.data_split()
        )

    def build(
        self, cfg: TrainConfig, data: DataBundle, device: torch.device
    ) -> tuple[ModelSpec, SegmentationModel, bool]:
        """The encoder's spec (no classification head), the model with its decoder on ``device``,
        and whether the weights started from had a head for other classes. The encoder is made as
        a classifier of the data's classes, so that published weights or a checkpoint load as they
        would for classification, then its head is dropped."""
        from vitbench.train.transfer import create_student, head_modules

        spec = cfg.model_spec(data.img_size, data.in_chans, data.num_classes)
        encoder, new_head = create_student(spec, device, cfg.pretrained, cfg.checkpoint)
        for name in head_modules(encoder, cfg.model):
            parent, _, attr = name.rpartition(".")
            setattr(encoder.get_submodule(parent), attr, nn.Identity())
        model = SegmentationModel(encoder, cfg.model, data.num_classes, cfg.decoder)
        return dataclasses.replace(spec, num_classes=0), model.to(device), new_head

    def loss(self, cfg: TrainConfig) -> nn.Module:
        """Cross-entropy of every labelled pixel (``(B, classes, H, W)`` logits, ``(B, H, W)``
        masks), with the config's label smoothing."""
        return nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX, label_smoothing=cfg.label_smoothing)

    @torch.no_grad()
    def evaluate(
        self, model: nn.Module, loader: DataLoader, num_classes: int, env: DistEnv, precision: str
    ) -> EvalStats:
        """Cross-entropy per labelled pixel, pixel accuracy and the pixel confusion matrix over
        every image of ``loader``'s split, summed over processes."""
        model.eval()
        matrix = torch.zeros(num_classes, num_classes, dtype=torch.float64)
        loss_sum, images = 0.0, 0
        for x, y in loader:
            x, y = x.to(env.device), y.to(env.device)  # (B, C, H, W), (B, H, W)
            with autocast(env.device.type, precision):
                logits = model(x).float()  # (B, classes, H, W)
            loss_sum += F.cross_entropy(
                logits, y, ignore_index=IGNORE_INDEX, reduction="sum"
            ).item()
            matrix += pixel_confusion(y, logits.argmax(1), num_classes).cpu()
            images += len(x)
        counts = all_sum_tensor(matrix, env).round().long().numpy()
        loss_sum, images = all_sum([loss_sum, float(images)], env)
        labelled = int(counts.sum())
        loss = loss_sum / labelled if labelled else float("nan")
        return EvalStats(loss, pixel_accuracy(counts), int(images), counts)

    def epoch_fields(self, val: EvalStats) -> dict[str, Any]:
        """A segmentation run's ``train_epochs`` fields: the validation mIoU."""
        return {"task": "segmentation", "val_miou": mean_iou(val.confusion)}

    def run_fields(self, cfg: TrainConfig, test: EvalStats) -> dict[str, Any]:
        """A segmentation run's ``train_runs`` fields: mIoU, pixel accuracy and each class's IoU
        on the test split (None for a class neither labelled nor predicted)."""
        iou = class_iou(test.confusion)
        return {
            "task": "segmentation",
            "decoder": cfg.decoder,
            "miou": mean_iou(test.confusion),
            "pixel_acc": test.acc,
            "iou": [None if np.isnan(v) else float(v) for v in iou],
        }

    @torch.no_grad()
    def write_files(
        self, model: nn.Module, data: DataBundle, rdir: Path, title: str, recorder: Recorder
    ) -> None:
        """``overlays.png``: the first test images with their true and predicted masks painted
        over them, also stored with the run's figures."""
        path = rdir / "overlays.png"
        x, truth = next(iter(DataLoader(data.test, batch_size=OVERLAY_IMAGES)))
        device = next(model.parameters()).device
        model.eval()
        pred = model(x.to(device)).argmax(1).cpu()  # (N, H, W)
        mean = torch.tensor(data.mean).view(1, -1, 1, 1)
        std = torch.tensor(data.std).view(1, -1, 1, 1)
        pixels = x[:, : len(data.mean)] * std + mean  # (N, native C, H, W) in [0, 1]
        images = pixels.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy()  # (N, H, W, 3)
        overlays(images, truth.numpy(), pred.numpy(), data.classes, path, title)
        recorder.write_figure(OVERLAY_FIGURE, path)
