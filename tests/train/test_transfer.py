"""Transfer learning: linear probe, a head resized to new classes, layer-wise decay, and the
pre-trained against from-scratch comparison as one sweep."""

from __future__ import annotations

import pytest
import torch

from vitbench.errors import CheckpointError, VitbenchError
from vitbench.store import open_store
from vitbench.train import TrainConfig, sweep, train
from vitbench.train.checkpoint import save_weights
from vitbench.train.inputs import check_inputs
from vitbench.train.transfer import create_student, layer_decay_groups
from vitbench.zoo import create_model
from vitbench.zoo.weights import read_state_dict

KW = dict(patch_size=2, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0)
TINY = dict(epochs=2, subset=128, batch_size=32, device="cpu", threads=1, lr=3e-3, model_kwargs=KW)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Weights trained on digits, to start from."""
    result = train(TrainConfig(**TINY), store=open_store(tmp_path_factory.mktemp("pre")))
    return result.run_dir / "model.safetensors"


def test_a_linear_probe_changes_only_the_head(pretrained) -> None:
    result = train(TrainConfig(**TINY, checkpoint=str(pretrained), freeze=True))
    before, after = read_state_dict(pretrained), result.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"head.weight", "head.bias"}
    rec = result.record
    assert rec["freeze"] and rec["start"] == "checkpoint" and not rec["new_head"]
    assert rec["trainable_params"] == 16 * 10 + 10 < rec["params"]


def test_fine_tuning_keeps_the_body_of_weights_made_for_other_classes(tmp_path) -> None:
    five = TrainConfig(model_kwargs=KW).model_spec(8, 1, 5)
    path = save_weights(create_model(five), tmp_path / "five.safetensors", {}, five)
    ten = TrainConfig(model_kwargs=KW).model_spec(8, 1, 10)
    model, new_head = create_student(ten, torch.device("cpu"), False, path)
    saved = read_state_dict(path)
    assert new_head and model.head.out_features == 10
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items() if "head" not in k)
    wide = TrainConfig(model_kwargs=dict(KW, embed_dim=32)).model_spec(8, 1, 10)
    with pytest.raises(CheckpointError, match="does not fit"):  # the body must fit
        create_student(wide, torch.device("cpu"), False, path)
    rec = train(TrainConfig(**TINY, checkpoint=str(path), layer_decay=0.7)).record
    assert rec["new_head"] and rec["layer_decay"] == 0.7


def _scales(model: torch.nn.Module, decay: float) -> dict[str, float]:
    """Each parameter's learning-rate scale, by name."""
    groups = layer_decay_groups(model, "a model", 0.05, decay)
    scale = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    return {name: scale[id(p)] for name, p in model.named_parameters()}


def test_layer_decay_scales_each_block_down_from_the_head() -> None:
    own = create_model(TrainConfig(model_kwargs=KW).model_spec(8, 1, 10))  # no group_matcher
    scale = _scales(own, 0.5)
    assert scale["head.weight"] == scale["norm.weight"] == 1.0
    assert (scale["blocks.1.attn.q.weight"], scale["blocks.0.mlp.fc1.weight"]) == (0.5, 0.25)
    assert scale["patch_embed.proj.weight"] == scale["pos_embed.weight"] == 0.125
    timm_vit = create_model("vit_tiny_patch16_224")  # timm's group_matcher: 12 blocks
    scale = _scales(timm_vit, 0.5)
    assert scale["head.weight"] == 1.0 and scale["blocks.11.mlp.fc2.weight"] == 0.5
    assert scale["cls_token"] == 0.5**13


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (dict(layer_decay=0.0), "layer_decay must be in"),
        (dict(layer_decay=0.7, freeze=True), "nothing to decay"),
    ],
)
def test_bad_transfer_options_name_the_parameter(options, words) -> None:
    with pytest.raises(VitbenchError, match=words):
        TrainConfig(**options).validate()


def test_a_probe_of_a_model_without_a_head_is_refused_before_training(tmp_path) -> None:
    (tmp_path / "headless.py").write_text(
        "from torch import nn\n\n\ndef seq(num_classes=10, img_size=8, in_chans=1):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, num_classes))\n"
    )
    cfg = TrainConfig(model=f"{tmp_path / 'headless.py'}:seq", freeze=True)
    with pytest.raises(VitbenchError, match="no classification head"):
        check_inputs(cfg.resolved())


def test_pretrained_against_scratch_is_one_sweep(tmp_path, pretrained) -> None:
    store = open_store(tmp_path)
    result = sweep(TrainConfig(**TINY), {"checkpoint": [None, str(pretrained)]}, store=store)
    assert [c["checkpoint"] for c in result.cells] == [None, str(pretrained)]
    runs = store.read("train_runs")
    assert sorted(runs.start) == ["checkpoint", "scratch"]
