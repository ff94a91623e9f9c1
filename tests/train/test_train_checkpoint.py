"""Checkpoints: training states round-trip through safetensors; weights load through the zoo."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import torch

from vitbench.errors import CheckpointError
from vitbench.train import checkpoint as ckpt
from vitbench.train.config import TrainConfig
from vitbench.train.recipe import build_optimizer
from vitbench.zoo import create_model


def _trained_optimizer() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    opt = build_optimizer(model, TrainConfig())
    model(torch.randn(2, 3)).sum().backward()
    opt.step()
    return model, opt


def _state(model: torch.nn.Module, opt: torch.optim.Optimizer, epoch: int = 2) -> ckpt.TrainState:
    history = [{"epoch": e, "val_acc": 0.5, "lr": 1e-3} for e in range(1, epoch + 1)]
    return ckpt.TrainState(
        run_id="r1",
        config=TrainConfig().to_dict(),
        progress=ckpt.Progress(epoch=epoch, updates=7 * epoch, history=history, train_s=1.5),
        model=model.state_dict(),
        optimizer=opt.state_dict(),
        scheduler={"last_epoch": 3, "base_values": [1e-3]},
        scaler={},
        rng=[ckpt.rng_state()],
    )


def _equal(a: object, b: object) -> bool:
    """Nested equality, tensors and arrays by value and type."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(_equal, a, b))
    return a == b


def test_a_training_state_round_trips_field_by_field(tmp_path) -> None:
    model, opt = _trained_optimizer()
    np.random.seed(3)
    torch.manual_seed(3)
    state = _state(model, opt)
    back = ckpt.load_state(ckpt.save_state(state, tmp_path / "last.safetensors"))
    for f in dataclasses.fields(ckpt.TrainState):
        assert _equal(getattr(back, f.name), getattr(state, f.name)), f.name
    fresh = build_optimizer(model, TrainConfig())
    fresh.load_state_dict(back.optimizer)  # tuples (betas) and int keys survive
    assert _equal(fresh.state_dict(), opt.state_dict())
    expect_torch, expect_np = torch.rand(3), np.random.rand(3)
    ckpt.set_rng_state(back.rng[0])
    assert torch.equal(torch.rand(3), expect_torch)
    assert np.array_equal(np.random.rand(3), expect_np)


def test_a_state_written_as_a_plain_dict_by_earlier_versions_still_loads(tmp_path) -> None:
    from safetensors.torch import save_file

    model, opt = _trained_optimizer()
    state = _state(model, opt)
    p = state.progress
    old = {"run_id": "r1", "config": state.config, "epoch": p.epoch, "updates": p.updates,
           "train_s": p.train_s, "history": p.history, "model": state.model,
           "optimizer": state.optimizer, "scheduler": state.scheduler, "scaler": {},
           "rng": state.rng}  # fmt: skip
    tensors, skeleton = ckpt.pack(old)
    save_file(tensors, tmp_path / "last.safetensors", metadata={"skeleton": json.dumps(skeleton)})
    back = ckpt.load_state(tmp_path / "last.safetensors")
    assert back.progress == p and back.run_id == "r1"
    assert _equal(back.model, state.model) and _equal(back.optimizer, state.optimizer)


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

    model, opt = _trained_optimizer()
    path = ckpt.save_state(_state(model, opt, epoch=1), tmp_path / "last.safetensors")
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError):
        ckpt.save_state(_state(model, opt, epoch=2), path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.safetensors"]  # no temporary left


def _refusal(path) -> str:
    with pytest.raises(CheckpointError) as info:
        ckpt.load_state(path)
    message = str(info.value)
    assert "\n" not in message
    with pytest.raises(CheckpointError, match=re.escape(message)):
        ckpt.check_state(path)  # the header alone tells
    return message


def test_what_is_not_a_training_state_is_refused_in_one_line(tmp_path) -> None:
    from safetensors.torch import save_file

    assert "no training state" in _refusal(tmp_path / "missing.safetensors")
    cfg = TrainConfig()
    weights = ckpt.save_weights(torch.nn.Linear(2, 2), tmp_path / "w.safetensors", cfg.to_dict())
    assert "not a vitbench training state (no skeleton)" in _refusal(weights)
    _, skeleton = ckpt.pack({"epoch": 1, "history": []})  # some other program's state
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(1)}, foreign, metadata={"skeleton": json.dumps(skeleton)})
    assert "not a vitbench training state (no run_id, config, model" in _refusal(foreign)
    cut = tmp_path / "cut.safetensors"
    save_file({"x": torch.zeros(1)}, cut, metadata={"skeleton": '{"__dict__": [["run'})
    assert "not a vitbench training state" in _refusal(cut)


def test_a_state_missing_a_tensor_is_refused_in_one_line(tmp_path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file

    model, opt = _trained_optimizer()
    path = ckpt.save_state(_state(model, opt), tmp_path / "last.safetensors")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys() if not k.startswith("/model/")}
    save_file(tensors, path, metadata=meta)
    ckpt.check_state(path)  # its header is whole
    with pytest.raises(CheckpointError, match="not a vitbench training state") as info:
        ckpt.load_state(path)
    assert "\n" not in str(info.value)
