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
from torch import nn
from torch.utils.data import DataLoader

from vitbench.precision import autocast
from vitbench.train.distributed import DistEnv, all_sum, all_sum_tensor
from vitbench.train.metrics import confusion

#: called after every training batch with (step in epoch, steps in epoch)
BatchHook = Callable[[int, int], None]


@dataclass
class Step:
    """What one training step needs besides the batch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object  # timm scheduler: step_update(num_updates)
    loss_fn: nn.Module
    mixup: Callable | None
    scaler: torch.amp.GradScaler | None
    clip_grad: float | None
    precision: str


@dataclass
class EpochStats:
    loss: float  # mean training objective per image
    acc: float  # fraction of images whose argmax is the (unmixed) label
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
    model.train()
    sums = [0.0, 0.0, 0.0]  # loss * images, correct, images
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
            logits = model(x)  # (B, classes)
            loss = step.loss_fn(logits, target)
        _update(step, loss)
        updates += 1
        b = y.shape[0]
        sums[0] += loss.item() * b
        sums[1] += (logits.argmax(1) == y).sum().item()
        sums[2] += b
        if on_batch is not None:
            on_batch(i + 1, n)
    if env.device.type == "cuda":
        torch.cuda.synchronize(env.device)
    seconds = time.perf_counter() - start
    loss_sum, correct, count = all_sum(sums, env)
    seconds = max(all_sum([seconds], env)[0] / env.world, 1e-9)  # mean wall time of processes
    lr = step.optimizer.param_groups[0]["lr"]
    stats = EpochStats(loss_sum / count, correct / count, int(count), seconds, lr)
    return stats, updates


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, num_classes: int, env: DistEnv, precision: str
) -> EvalStats:
    """Cross-entropy, accuracy and confusion matrix over every image of ``loader``'s split."""
    model.eval()
    loss_sum, targets, preds = 0.0, [], []
    for x, y in loader:
        x, y = x.to(env.device), y.to(env.device)
        with autocast(env.device.type, precision):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").item()
        targets.append(y.cpu())
        preds.append(logits.argmax(1).cpu())
    t = torch.cat(targets) if targets else torch.empty(0, dtype=torch.long)
    p = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)
    matrix = torch.as_tensor(confusion(t.tolist(), p.tolist(), num_classes), dtype=torch.float64)
    matrix = all_sum_tensor(matrix, env).round().long().numpy()
    loss_sum, count = all_sum([loss_sum, float(len(t))], env)
    correct = int(np.trace(matrix))
    if count == 0:
        return EvalStats(float("nan"), float("nan"), 0, matrix)
    return EvalStats(loss_sum / count, correct / count, int(count), matrix)
