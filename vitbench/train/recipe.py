"""The training recipe: the timm components a :class:`TrainConfig` turns into.

AdamW without weight decay on biases and norms (timm's ``create_optimizer_v2``), linear warm-up
then cosine decay stepped per update (timm's ``CosineLRScheduler``), label smoothing, mixup and
cutmix (timm's ``Mixup`` with ``SoftTargetCrossEntropy``), gradient clipping, the model's own
regularisers passed as timm keyword arguments: dropout (``drop_rate``), stochastic depth
(``drop_path_rate``) and LayerScale (``init_values``); layer-wise learning-rate decay (timm's
``lr_scale`` groups, :mod:`vitbench.train.transfer`) and an exponential moving average of the
weights (timm's ``ModelEmaV3``).
"""

from __future__ import annotations

import torch
from torch import nn

from vitbench.train.config import TrainConfig


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW over the parameters that train; biases, norms and the model's ``no_weight_decay``
    set are not decayed; with ``layer_decay``, each layer's learning rate is scaled."""
    from timm.optim import create_optimizer_v2

    from vitbench.train.transfer import layer_decay_groups

    params = model
    if cfg.layer_decay is not None:
        params = layer_decay_groups(model, cfg.model, cfg.weight_decay, cfg.layer_decay)
    return create_optimizer_v2(params, opt="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_ema(model: nn.Module, cfg: TrainConfig):
    """timm's ``ModelEmaV3`` of ``model`` at decay ``cfg.ema`` (no warm-up), else None."""
    if cfg.ema is None:
        return None
    from timm.utils import ModelEmaV3

    return ModelEmaV3(model, decay=cfg.ema)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """Linear warm-up from 0, then cosine decay to ``min_lr``, both counted in updates."""
    from timm.scheduler import CosineLRScheduler

    total = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup * total)
    return CosineLRScheduler(
        optimizer,
        t_initial=max(total - warmup, 1),
        lr_min=cfg.min_lr,
        warmup_t=warmup,
        warmup_lr_init=0.0,
        warmup_prefix=True,
        t_in_epochs=False,
    )


def build_mixup(cfg: TrainConfig, num_classes: int):
    """timm's Mixup (which also smooths the labels) when mixup or cutmix is on, else None."""
    if cfg.mixup <= 0 and cfg.cutmix <= 0:
        return None
    from timm.data import Mixup

    return Mixup(
        mixup_alpha=cfg.mixup,
        cutmix_alpha=cfg.cutmix,
        label_smoothing=cfg.label_smoothing,
        num_classes=num_classes,
    )


def build_loss(cfg: TrainConfig) -> nn.Module:
    """Soft-target cross-entropy after mixup, else cross-entropy with label smoothing."""
    if cfg.mixup > 0 or cfg.cutmix > 0:
        from timm.loss import SoftTargetCrossEntropy

        return SoftTargetCrossEntropy()
    return nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
