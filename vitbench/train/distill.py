"""Knowledge distillation as in DeiT (Touvron et al. 2021): a frozen teacher's predictions are
a second target of the student.

With ``Z_s`` the student's logits, ``Z_t`` the teacher's, ``y`` the label, ``psi`` the softmax:

    soft:  (1 - lambda) CE(psi(Z_s), y) + lambda tau^2 KL(psi(Z_s / tau), psi(Z_t / tau))
    hard:  (1 - lambda) CE(psi(Z_s), y) + lambda CE(psi(Z_s), argmax_c Z_t(c))   (lambda = 1/2)

A student with a distillation token (vitbench's ``scratch_deit_*_distilled_*``, timm's
``deit_*_distilled_*``) takes the label's term on its class head and the teacher's on its
distillation head; at test time the two heads' logits are averaged, as DeiT does, and each head
is also scored alone. A student without one takes both terms on its class head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vitbench.errors import VitbenchError
from vitbench.train.config import TrainConfig
from vitbench.zoo import ModelSpec, create_model
from vitbench.zoo.factory import default_input_size, with_checkpoint_spec

#: a model's training output: logits, or (class head, distillation head) logits
Output = Tensor | tuple[Tensor, Tensor]


def has_dist_head(model: nn.Module) -> bool:
    """Whether ``model`` has DeiT's distillation head (vitbench's and timm's spell it alike)."""
    return isinstance(getattr(model, "head_dist", None), nn.Module)


def head_logits(model: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """A distilled model's class and distillation heads' logits, each ``(B, classes)``; in eval
    mode their mean is the model's output."""
    tokens = model.forward_features(x)  # (B, 2 + N, D): class, distillation, patches
    return model.head(tokens[:, 0]), model.head_dist(tokens[:, 1])


def merged(output: Output) -> Tensor:
    """The logits a prediction is read from: both heads averaged, as at test time."""
    return (output[0] + output[1]) / 2 if isinstance(output, tuple) else output


def teacher_spec(cfg: TrainConfig, img_size: int, in_chans: int, num_classes: int) -> ModelSpec:
    """The teacher's spec, its shape filled from its checkpoint, checked on the meta device to
    fit its weights and to predict the data's ``num_classes`` classes."""
    from vitbench.zoo.sources import check_available
    from vitbench.zoo.weights import check_fits, checkpoint_shapes

    assert cfg.teacher is not None
    check_available(cfg.teacher, cfg.teacher_pretrained)
    spec = ModelSpec(cfg.teacher, img_size=img_size, in_chans=in_chans, kwargs=cfg.teacher_kwargs)
    spec = with_checkpoint_spec(spec, cfg.teacher_checkpoint)
    meta = create_model(spec, device="meta")
    if cfg.teacher_checkpoint is not None:
        check_fits(meta, checkpoint_shapes(cfg.teacher_checkpoint), cfg.teacher_checkpoint)
    shape = default_input_size(meta, spec)
    with torch.no_grad():
        classes = merged(meta(torch.empty(1, *shape, device="meta"))).shape[-1]
    if classes != num_classes:
        raise VitbenchError(
            f"the teacher {cfg.teacher} predicts {classes} classes and {cfg.dataset} has "
            f"{num_classes}: give a teacher trained on {cfg.dataset}"
        )
    return spec


def build_teacher(
    cfg: TrainConfig, img_size: int, in_chans: int, num_classes: int, device: torch.device
) -> nn.Module:
    """The teacher with its weights, frozen, in eval mode on ``device``."""
    spec = teacher_spec(cfg, img_size, in_chans, num_classes)
    teacher = create_model(
        spec, device=device, pretrained=cfg.teacher_pretrained, checkpoint=cfg.teacher_checkpoint
    )
    return teacher.requires_grad_(False).eval()


class DistillationLoss:
    """The objective with a teacher: ``(1 - weight) * label loss + weight * teacher loss``."""

    def __init__(
        self, base: nn.Module, teacher: nn.Module, kind: str, weight: float, tau: float
    ) -> None:
        if kind not in ("hard", "soft"):
            raise VitbenchError(f"distillation is hard or soft, not '{kind}'")
        self.base, self.teacher, self.kind, self.weight, self.tau = base, teacher, kind, weight, tau

    @torch.no_grad()
    def teacher_logits(self, x: Tensor) -> Tensor:
        """The frozen teacher's logits for the (augmented, mixed) batch ``x``: (B, classes)."""
        return merged(self.teacher(x)).float()

    def parts(self, x: Tensor, output: Output, target: Tensor) -> tuple[Tensor, Tensor]:
        """The label's term (on the class head) and the teacher's (on the distillation head,
        or the class head of a student without one)."""
        cls, dist = output if isinstance(output, tuple) else (output, output)
        teacher = self.teacher_logits(x)
        if self.kind == "hard":
            return self.base(cls, target), F.cross_entropy(dist.float(), teacher.argmax(1))
        log_s = F.log_softmax(dist.float() / self.tau, dim=1)
        log_t = F.log_softmax(teacher / self.tau, dim=1)
        kl = F.kl_div(log_s, log_t, reduction="batchmean", log_target=True)
        return self.base(cls, target), kl * self.tau**2

    def __call__(self, x: Tensor, output: Output, target: Tensor) -> Tensor:
        label, teacher = self.parts(x, output, target)
        return (1 - self.weight) * label + self.weight * teacher
