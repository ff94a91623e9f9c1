"""The recipe: option checks, the warm-up + cosine schedule, weight decay groups, mixup."""

from __future__ import annotations

import math

import pytest
import torch

from vitbench.errors import VitbenchError
from vitbench.train.config import TrainConfig
from vitbench.train.defaults import DEFAULT_MODEL, DEFAULT_MODEL_KWARGS
from vitbench.train.recipe import (
    build_loss,
    build_mixup,
    build_optimizer,
    build_scheduler,
)
from vitbench.zoo import create_model


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (dict(epochs=-1), "epochs"),
        (dict(epochs=0), "epochs"),
        (dict(dataset="imagenet"), "unknown dataset"),
        (dict(batch_size=0), "batch_size"),
        (dict(lr=-1.0), "lr must be positive"),
        (dict(warmup=1.0), "warmup"),
        (dict(label_smoothing=1.0), "label_smoothing"),
        (dict(mixup=-0.2), "mixup"),
        (dict(drop_path=1.5), "drop_path"),
        (dict(precision="fp8"), "precision"),
        (dict(pretrained=True, checkpoint="w.safetensors"), "not both"),
    ],
)
def test_bad_options_are_user_errors(change, words) -> None:
    with pytest.raises(VitbenchError, match=words) as info:
        TrainConfig(**change).validate()
    assert info.value.exit_code == 2


def test_model_kwargs_override_the_default_model_and_carry_regularisers() -> None:
    cfg = TrainConfig(model_kwargs={"depth": 6}, dropout=0.1, drop_path=0.2, layer_scale=1e-4)
    kw = cfg.resolved_model_kwargs()
    assert kw == {**DEFAULT_MODEL_KWARGS, "depth": 6, "drop_rate": 0.1,
                  "drop_path_rate": 0.2, "init_values": 1e-4}  # fmt: skip
    other = TrainConfig(model="scratch_mlp", model_kwargs={"hidden_dim": 32})
    assert other.resolved_model_kwargs() == {"hidden_dim": 32}  # no ViT defaults leak in
    spec = cfg.model_spec(8, 1, 10)
    assert spec.name == DEFAULT_MODEL and (spec.img_size, spec.in_chans) == (8, 1)


def test_fingerprint_ignores_where_it_runs_but_not_what_it_trains() -> None:
    a = TrainConfig()
    assert a.fingerprint() == TrainConfig(device="cuda", workers=4).fingerprint()
    assert a.fingerprint() != TrainConfig(lr=2e-3).fingerprint()
    assert TrainConfig.from_dict(a.to_dict()) == a


def test_warmup_then_cosine_matches_the_closed_form() -> None:
    model = torch.nn.Linear(4, 2)
    cfg = TrainConfig(epochs=10, lr=1e-3, min_lr=1e-5, warmup=0.2)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=5)  # 50 updates, 10 of warm-up
    total, warm = 50, 10

    def expected(t: int) -> float:  # lr of update t (1-based), as the engine asks for it
        if t < warm:
            return cfg.lr * t / warm
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (
            1 + math.cos(math.pi * (t - warm) / (total - warm))
        )

    for t in (1, 5, 10, 11, 30, 49, 50):
        sched.step_update(t)
        assert opt.param_groups[0]["lr"] == pytest.approx(expected(t), rel=1e-9, abs=1e-12)


def test_no_weight_decay_on_biases_and_norms() -> None:
    model = create_model(TrainConfig().model_spec(8, 1, 10))
    opt = build_optimizer(model, TrainConfig(weight_decay=0.05))
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    for name, p in model.named_parameters():
        assert (id(p) in decay) == (p.ndim > 1), name
    assert all(g["lr"] == 1e-3 for g in opt.param_groups)
    assert isinstance(opt, torch.optim.AdamW)


def test_mixup_gives_soft_targets_and_their_loss() -> None:
    from timm.loss import SoftTargetCrossEntropy

    assert build_mixup(TrainConfig(), 10) is None
    assert isinstance(build_loss(TrainConfig()), torch.nn.CrossEntropyLoss)
    cfg = TrainConfig(mixup=0.4, cutmix=1.0, label_smoothing=0.1)
    mix = build_mixup(cfg, 10)
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    _, soft = mix(x, y)
    assert soft.shape == (4, 10)
    torch.testing.assert_close(soft.sum(1), torch.ones(4))
    assert isinstance(build_loss(cfg), SoftTargetCrossEntropy)
