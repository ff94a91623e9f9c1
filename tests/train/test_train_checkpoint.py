"""Checkpoints: nested states round-trip through safetensors; weights load through the zoo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vitbench.errors import CheckpointError
from vitbench.train import checkpoint as ckpt
from vitbench.train.recipe import TrainConfig, build_optimizer
from vitbench.zoo import create_model


def _trained_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    opt = build_optimizer(model, TrainConfig())
    model(torch.randn(2, 3)).sum().backward()
    opt.step()
    return model, opt


def test_optimizer_and_rng_states_round_trip(tmp_path) -> None:
    model, opt = _trained_optimizer()
    np.random.seed(3)
    torch.manual_seed(3)
    state = {"optimizer": opt.state_dict(), "rng": [ckpt.rng_state()], "epoch": 2,
             "history": [{"epoch": 1, "val_acc": 0.5}]}  # fmt: skip
    path = ckpt.save_state(state, tmp_path / "last.safetensors")
    back = ckpt.load_state(path)
    assert back["epoch"] == 2 and back["history"] == state["history"]
    fresh = build_optimizer(model, TrainConfig())
    fresh.load_state_dict(back["optimizer"])
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]  # tuples (betas) and int keys survive
    for k in a["state"]:
        for name, v in a["state"][k].items():
            assert torch.equal(v, b["state"][k][name])
    expect_torch, expect_np = torch.rand(3), np.random.rand(3)
    ckpt.set_rng_state(back["rng"][0])
    assert torch.equal(torch.rand(3), expect_torch)
    assert np.array_equal(np.random.rand(3), expect_np)


def test_weights_load_through_the_zoo_with_their_config(tmp_path) -> None:
    cfg = TrainConfig()
    spec = cfg.model_spec(8, 1, 10)
    model = create_model(spec)
    path = ckpt.save_weights(model, tmp_path / "model.safetensors", cfg.to_dict())
    again = create_model(spec, checkpoint=path)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(model(x), again(x))
    assert TrainConfig.from_dict(ckpt.read_config(path)) == cfg


def test_a_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    import safetensors.torch

    path = ckpt.save_state({"epoch": 1}, tmp_path / "last.safetensors")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError):
        ckpt.save_state({"epoch": 2}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temporary left


def test_not_a_state_file(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no training state"):
        ckpt.load_state(tmp_path / "missing.safetensors")
    cfg = TrainConfig()
    weights = ckpt.save_weights(torch.nn.Linear(2, 2), tmp_path / "w.safetensors", cfg.to_dict())
    with pytest.raises(CheckpointError, match="not a vitbench training state"):
        ckpt.load_state(weights)
