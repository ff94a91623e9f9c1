"""The training recipe: one config dataclass and the timm components it turns into.

AdamW without weight decay on biases and norms (timm's ``create_optimizer_v2``), linear warm-up
then cosine decay stepped per update (timm's ``CosineLRScheduler``), label smoothing, mixup and
cutmix (timm's ``Mixup`` with ``SoftTargetCrossEntropy``), gradient clipping, and the model's own
regularisers passed as timm keyword arguments: dropout (``drop_rate``), stochastic depth
(``drop_path_rate``) and LayerScale (``init_values``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vitbench.device import check_device
from vitbench.errors import VitbenchError
from vitbench.train.defaults import DATASETS, DEFAULT_MODEL, DEFAULT_MODEL_KWARGS, LOCAL_DATASETS
from vitbench.zoo import ModelSpec

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Everything that decides a training run's result (and nothing that does not)."""

    # data
    dataset: str = "digits"
    data_dir: str | None = None
    img_size: int | None = None  # None: the dataset's own
    in_chans: int | None = None  # None: the dataset's own
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    subset: int | None = None  # at most this many images per split
    # model; for DEFAULT_MODEL, model_kwargs override DEFAULT_MODEL_KWARGS key by key
    model: str = DEFAULT_MODEL
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = False
    checkpoint: str | None = None
    dropout: float | None = None  # drop_rate; None: the model's default
    drop_path: float | None = None  # drop_path_rate
    layer_scale: float | None = None  # init_values
    # optimisation
    epochs: int = 50
    batch_size: int = 64  # global: split evenly across data-parallel processes
    lr: float = 1e-3
    min_lr: float = 1e-5
    weight_decay: float = 0.05
    warmup: float = 0.1  # share of all updates spent in linear warm-up
    label_smoothing: float = 0.1
    mixup: float = 0.0  # mixup alpha; 0 is off
    cutmix: float = 0.0  # cutmix alpha; 0 is off
    clip_grad: float | None = 1.0  # max gradient norm
    # execution
    seed: int = 0
    device: str | None = None  # None: cuda when available
    precision: str = "fp32"
    grad_checkpointing: bool = False
    workers: int = 0
    threads: int | None = None  # CPU threads for this run; None: torch's default

    def validate(self) -> None:
        """Raise :class:`VitbenchError` for options that cannot make a run."""
        self._validate_data()
        if self.epochs < 1:
            raise VitbenchError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise VitbenchError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.lr <= 0:
            raise VitbenchError(f"lr must be positive, got {self.lr}")
        if self.min_lr < 0 or self.weight_decay < 0:
            raise VitbenchError("min_lr and weight_decay must be non-negative")
        if not 0 <= self.warmup < 1:
            raise VitbenchError(f"warmup is a share of the run in [0, 1), got {self.warmup}")
        if not 0 <= self.label_smoothing < 1:
            raise VitbenchError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.mixup < 0 or self.cutmix < 0:
            raise VitbenchError("mixup and cutmix alphas must be non-negative")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise VitbenchError(f"clip_grad must be positive, got {self.clip_grad}")
        for name in ("dropout", "drop_path"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise VitbenchError(f"{name} must be in [0, 1), got {value}")
        if self.precision not in PRECISIONS:
            choices = ", ".join(PRECISIONS)
            raise VitbenchError(f"precision is one of {choices}, not {self.precision}")
        if self.threads is not None and self.threads < 1:
            raise VitbenchError(f"threads must be at least 1, got {self.threads}")
        if self.workers < 0:
            raise VitbenchError(f"workers must be non-negative, got {self.workers}")
        if self.pretrained and self.checkpoint:
            raise VitbenchError("give pretrained or checkpoint, not both")
        if self.device is not None:  # None: cuda when available, else the CPU
            check_device(self.device)

    def _validate_data(self) -> None:
        """The dataset, where it is read from and the image shape."""
        if self.dataset not in DATASETS:
            choices = ", ".join(DATASETS)
            raise VitbenchError(f"unknown dataset '{self.dataset}'; choose from {choices}")
        if self.data_dir is not None and self.dataset not in LOCAL_DATASETS:
            raise VitbenchError(
                f"data_dir is read only by the local datasets ({', '.join(LOCAL_DATASETS)}); "
                f"{self.dataset} is embedded"
            )
        for name in ("img_size", "subset"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise VitbenchError(f"{name} must be positive, got {value}")
        if self.in_chans is not None and self.in_chans not in (1, 3):
            raise VitbenchError(f"in_chans must be 1 or 3, got {self.in_chans}")

    def resolved_model_kwargs(self) -> dict[str, Any]:
        """Architecture keywords for the model, with the recipe's regularisers added."""
        base = DEFAULT_MODEL_KWARGS if self.model == DEFAULT_MODEL else {}
        kw = {**base, **self.model_kwargs}
        for key, value in (
            ("drop_rate", self.dropout),
            ("drop_path_rate", self.drop_path),
            ("init_values", self.layer_scale),
        ):
            if value is not None:
                kw[key] = value
        return kw

    def model_spec(self, img_size: int, in_chans: int, num_classes: int) -> ModelSpec:
        return ModelSpec(
            self.model,
            img_size=img_size,
            in_chans=in_chans,
            num_classes=num_classes,
            kwargs=self.resolved_model_kwargs(),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise VitbenchError(f"unknown training options: {', '.join(sorted(unknown))}")
        return cls(**data)

    def fingerprint(self) -> str:
        """A short hash of every field that decides the result (not where or how fast it runs)."""
        d = self.to_dict()
        for key in ("device", "workers", "threads", "data_dir"):
            d.pop(key)
        blob = json.dumps(d, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; biases, norms and the model's ``no_weight_decay`` set are not decayed."""
    from timm.optim import create_optimizer_v2

    return create_optimizer_v2(model, opt="adamw", lr=cfg.lr, weight_decay=cfg.weight_decay)


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
