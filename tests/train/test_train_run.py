"""Training runs end to end: learning, stored rows, resuming, other zoo models."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from interrupted import interrupted

from vitbench.errors import VitbenchError
from vitbench.measure.closed_form import ViTShape, vit_macs, vit_params
from vitbench.store import Claim, claim, holder, open_store
from vitbench.train import TrainConfig, load_data, train
from vitbench.train.defaults import DEFAULT_MODEL_KWARGS
from vitbench.zoo import create_model

SHORT = dict(epochs=10, lr=3e-3, device="cpu")  # CPU: a re-evaluation must agree exactly
TINY = dict(epochs=2, subset=64, batch_size=32, device="cpu", threads=1,
            model_kwargs=dict(depth=1, embed_dim=16, num_heads=2))  # fmt: skip


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    store = open_store(tmp_path_factory.mktemp("store"))
    return train(TrainConfig(**SHORT), store=store), store


def test_a_short_run_beats_chance_by_a_wide_margin(short_run) -> None:
    result, _ = short_run
    assert result.test_acc > 0.6  # chance is 0.1 on ten balanced classes
    assert result.epochs[-1]["train_loss"] < result.epochs[0]["train_loss"]


def test_stored_rows_agree_with_an_independent_evaluation(short_run) -> None:
    result, store = short_run
    epochs = store.read("train_epochs")
    runs = store.read("train_runs")
    assert list(epochs.epoch) == list(range(1, 11)) and set(epochs.run_id) == {result.run_id}
    assert len(runs) == 1 and runs.run_id[0] == result.run_id
    assert runs.env_device_type[0] == "cpu"
    # reload the saved weights through the zoo and score the test split by hand
    cfg = result.config
    data = load_data("digits", seed=cfg.seed)
    spec = cfg.model_spec(8, 1, 10)
    model = create_model(spec, checkpoint=result.run_dir / "model.safetensors")
    x, y = data.test.tensors
    with torch.no_grad():
        logits = model(x)
    acc = (logits.argmax(1) == y).double().mean().item()
    loss = torch.nn.functional.cross_entropy(logits, y).item()
    assert runs.test_acc[0] == pytest.approx(acc, abs=1e-12)
    assert runs.test_loss[0] == pytest.approx(loss, rel=1e-5)
    matrix = np.array(result.confusion)
    assert matrix.sum() == len(y) == runs.test_images[0] and np.trace(matrix) == round(acc * len(y))
    # params and MACs against the closed form of a plain ViT
    kw = DEFAULT_MODEL_KWARGS
    shape = ViTShape(img_size=8, patch_size=kw["patch_size"], in_chans=1, num_classes=10,
                     embed_dim=kw["embed_dim"], depth=kw["depth"], num_heads=kw["num_heads"],
                     mlp_ratio=kw["mlp_ratio"])  # fmt: skip
    assert runs.params[0] == vit_params(shape)
    assert runs.macs[0] == vit_macs(shape)
    for name in ("curves.png", "confusion.png", "last.safetensors", "model.safetensors"):
        assert (result.run_dir / name).is_file()


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_ends_exactly_where_the_uninterrupted_run_does(tmp_path) -> None:
    # dropout and mixup draw random numbers: resuming must restore every generator
    # bit-identical on the CPU; CUDA kernels are not deterministic run to run
    cfg = TrainConfig(epochs=4, subset=192, dropout=0.1, mixup=0.2, lr=2e-3, device="cpu")
    whole = train(cfg, store=open_store(tmp_path / "a"))
    store = open_store(tmp_path / "b")
    run_dir = interrupted(cfg, store, after_epoch=2)
    assert holder(store, "train_run", run_dir.name).status == "released"  # it let go
    resumed = train(resume=run_dir.name, store=store)
    assert resumed.run_id == run_dir.name
    a, b = _weights(whole.model), _weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    for key in ("test_acc", "test_loss", "best_val_acc"):
        assert resumed.record[key] == whole.record[key]
    for ea, eb in zip(whole.epochs, resumed.epochs, strict=True):
        assert (ea["train_loss"], ea["val_acc"], ea["lr"]) == (
            eb["train_loss"],
            eb["val_acc"],
            eb["lr"],
        )
    assert list(store.read("train_epochs").epoch) == [1, 2, 3, 4]  # each epoch stored once
    assert len(store.read("train_runs")) == 1
    assert holder(store, "train_run", run_dir.name).status == "done"


def test_a_second_resume_of_a_running_run_is_refused_in_one_line(tmp_path) -> None:
    store = open_store(tmp_path)
    run_dir = interrupted(TrainConfig(**TINY), store, after_epoch=1)
    running = claim(store, "train_run", run_dir.name)  # as if another process were training it
    assert isinstance(running, Claim)
    with pytest.raises(VitbenchError, match=f"already running in process {os.getpid()} on "):
        train(resume=run_dir.name, store=store)
    assert store.counts()["train_epochs"] == 1  # nothing trained or stored
    running.release()
    assert train(resume=run_dir.name, store=store).run_id == run_dir.name
    with pytest.raises(VitbenchError, match="has finished"):
        train(resume=run_dir.name, store=store)


def test_the_mlp_baseline_and_an_adapted_timm_vit_train_the_same_way(tmp_path) -> None:
    mlp = train(TrainConfig(model="scratch_mlp", epochs=3, lr=2e-3))
    assert mlp.test_acc > 0.6 and mlp.run_dir is None
    # timm's ImageNet ViT reshaped to 16x16 one-channel digits, gradient checkpointing on
    vit = train(
        TrainConfig(model="vit_tiny_patch16_224", img_size=16, epochs=1, subset=128,
                    model_kwargs=dict(patch_size=4, embed_dim=32, depth=2, num_heads=2),
                    grad_checkpointing=True),
        store=open_store(tmp_path),
    )  # fmt: skip
    assert vit.record["img_size"] == 16 and vit.record["in_chans"] == 1
    assert vit.record["num_classes"] == 10 and 0 <= vit.test_acc <= 1
    assert vit.model.patch_embed.proj.in_channels == 1


def test_options_that_cannot_run_are_user_errors() -> None:
    with pytest.raises(VitbenchError, match="gradient checkpointing"):
        train(TrainConfig(epochs=1, subset=64, grad_checkpointing=True))
    with pytest.raises(VitbenchError, match="fp16"):
        train(TrainConfig(epochs=1, subset=64, precision="fp16", device="cpu"))
    with pytest.raises(VitbenchError, match="does not accept"):
        train(TrainConfig(model="scratch_mlp", epochs=1, drop_path=0.1))
    with pytest.raises(VitbenchError, match="no batch"):
        train(TrainConfig(epochs=1, subset=32, mixup=0.2))
