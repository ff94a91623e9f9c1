"""One epoch of training and one pass of evaluation, on one process or many.

Both loops sum what they measure (loss times images, correct predictions, images) on each
process and reduce the sums over processes, so the figures are those of the whole split.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from vitbench.precision import autocast
from vitbench.segmentation.metrics import hits
from vitbench.train.distill import DistillationLoss, Output, has_dist_head, head_logits, merged
from vitbench.train.distributed import DistEnv, all_sum, all_sum_tensor
from vitbench.train.metrics import confusion

#: called after every training batch with (step in epoch, steps in epoch)
BatchHook = Callable[[int, int], None]


@dataclass
class Step:
    """What one training step needs besides the batch."""

    model: nn.Module  # the model trained, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: object  # timm scheduler: step_update(num_updates)
    loss_fn: nn.Module
    mixup: Callable | None
    scaler: torch.amp.GradScaler | None
    clip_grad: float | None
    precision: str
    distill: DistillationLoss | None = None  # the objective, with a teacher
    ema: nn.Module | None = None  # timm's ModelEmaV3 of the unwrapped model, updated every step
    train_only: list[nn.Module] | None = None  # the modules in training mode (None: all)

    def objective(self, x: Tensor, output: Output, target: Tensor) -> Tensor:
        """The loss to minimise for the batch ``x`` (the teacher reads it too)."""
        if self.distill is not None:
            return self.distill(x, output, target)
        return self.loss_fn(output, target)

    def train_mode(self) -> None:
        """Training mode for what trains; a frozen backbone stays in eval mode."""
        self.model.train(self.train_only is None)
        for module in self.train_only or ():
            module.train()

    def update_ema(self, updates: int) -> None:
        """Move the weights' average towards the weights after update number ``updates``."""
        if self.ema is not None:
            model = self.model
            if isinstance(model, nn.parallel.DistributedDataParallel):
                model = model.module
            self.ema.update(model, step=updates)


@dataclass
class EpochStats:
    loss: float  # mean training objective per image
    acc: float  # fraction of images (of masks' labelled pixels) whose argmax is the label
    images: int
    seconds: float
    lr: float  # learning rate of the last update

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class EvalStats:
    loss: float  # mean cross-entropy (no smoothing)
    acc: float
    images: int
    confusion: np.ndarray  # (classes, classes), rows = true class
    acc_cls: float | None = None  # a distilled model's class head alone
    acc_dist: float | None = None  # and its distillation head alone


def _update(step: Step, loss: torch.Tensor) -> None:
    """One optimizer update from ``loss``: backward (scaled in fp16), clip, step."""
    opt = step.optimizer
    opt.zero_grad(set_to_none=True)
    if step.scaler is not None:
        step.scaler.scale(loss).backward()
        step.scaler.unscale_(opt)
    else:
        loss.backward()
    if step.clip_grad is not None:
        nn.utils.clip_grad_norm_(step.model.parameters(), step.clip_grad)
    if step.scaler is not None:
        step.scaler.step(opt)
        step.scaler.update()
    else:
        opt.step()


def train_epoch(
    step: Step, loader: DataLoader, env: DistEnv, first_update: int, on_batch: BatchHook | None
) -> tuple[EpochStats, int]:
    """Train over ``loader`` once; returns the epoch's stats and the updates done so far."""
    model = step.model
    step.train_mode()
    sums = [0.0, 0.0, 0.0, 0.0]  # loss * images, correct, images, labels (pixels of masks)
    updates = first_update
    n = len(loader)
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        x = x.to(env.device, non_blocking=True)  # (B, C, H, W)
        y = y.to(env.device, non_blocking=True)  # (B,)
        target = y
        if step.mixup is not None:
            x, target = step.mixup(x, y)  # target: (B, classes) soft labels
        step.scheduler.step_update(updates + 1)  # the lr of this update
        with autocast(env.device.type, step.precision):
            output = model(x)  # (B, classes), or both heads' of a distilled student
            loss = step.objective(x, output, target)
        _update(step, loss)
        updates += 1
        step.update_ema(updates)
        b = y.shape[0]
        sums[0] += loss.item() * b
        right, scored = hits(merged(output), y)
        sums[1] += right
        sums[2] += b
        sums[3] += scored
        if on_batch is not None:
            on_batch(i + 1, n)
    if env.device.type == "cuda":
        torch.cuda.synchronize(env.device)
    seconds = time.perf_counter() - start
    loss_sum, correct, count, labels = all_sum(sums, env)
    seconds = max(all_sum([seconds], env)[0] / env.world, 1e-9)  # mean wall time of processes
    lr = step.optimizer.param_groups[0]["lr"]
    acc = correct / labels if labels else float("nan")  # a batch of ignored pixels only
    stats = EpochStats(loss_sum / count, acc, int(count), seconds, lr)
    return stats, updates


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, num_classes: int, env: DistEnv, precision: str
) -> EvalStats:
    """Cross-entropy, accuracy and confusion matrix over every image of ``loader``'s split; a
    distilled model is scored on its heads' mean, and on each head alone."""
    model.eval()
    heads = has_dist_head(model)
    sums = [0.0, 0.0, 0.0]  # loss * images; the class head's and the distillation head's hits
    targets, preds = [], []
    for x, y in loader:
        x, y = x.to(env.device), y.to(env.device)
        with autocast(env.device.type, precision):
            output = head_logits(model, x) if heads else model(x)
        logits = merged(output).float()
        sums[0] += F.cross_entropy(logits, y, reduction="sum").item()
        if heads:
            sums[1] += (output[0].argmax(1) == y).sum().item()
            sums[2] += (output[1].argmax(1) == y).sum().item()
        targets.append(y.cpu())
        preds.append(logits.argmax(1).cpu())
    t = torch.cat(targets) if targets else torch.empty(0, dtype=torch.long)
    p = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)
    matrix = torch.as_tensor(confusion(t.tolist(), p.tolist(), num_classes), dtype=torch.float64)
    matrix = all_sum_tensor(matrix, env).round().long().numpy()
    loss_sum, cls_hits, dist_hits, count = all_sum([*sums, float(len(t))], env)
    if count == 0:
        return EvalStats(float("nan"), float("nan"), 0, matrix)
    stats = EvalStats(loss_sum / count, int(np.trace(matrix)) / count, int(count), matrix)
    if heads:
        stats.acc_cls, stats.acc_dist = cls_hits / count, dist_hits / count
    return stats
