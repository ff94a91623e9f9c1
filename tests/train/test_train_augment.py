"""RandAugment and random erasing of training images, weights EMA, and resuming with both."""

from __future__ import annotations

import json

import pytest
import torch
from interrupted import interrupted
from PIL import Image

from vitbench.errors import VitbenchError
from vitbench.store import open_store
from vitbench.train import TrainConfig, load_data, train
from vitbench.train import checkpoint as ckpt
from vitbench.zoo.weights import read_state_dict

AUGMENT = dict(randaugment="rand-m9-mstd0.5-inc1", random_erasing=0.5)
TINY = dict(epochs=3, subset=96, batch_size=32, device="cpu", threads=1, lr=3e-3,
            model_kwargs=dict(depth=1, embed_dim=16, num_heads=2))  # fmt: skip


def test_training_images_are_augmented_when_read_and_the_others_are_not() -> None:
    plain = load_data("digits", img_size=16, in_chans=3)
    data = load_data("digits", img_size=16, in_chans=3, **AUGMENT)
    torch.manual_seed(0)
    first, again = data.train[0][0], data.train[0][0]
    assert first.shape == plain.train[0][0].shape == (3, 16, 16)
    assert not torch.equal(first, again)  # drawn anew every time
    assert data.train[0][1] == plain.train[0][1]
    assert torch.equal(data.test.tensors[0], plain.test.tensors[0])
    assert torch.equal(data.val.tensors[0], plain.val.tensors[0])
    # with no operation drawn, the augmented path preprocesses as the plain one (PIL's 8 bits)
    same = load_data("digits", randaugment="rand-n0")
    torch.testing.assert_close(same.train[0][0], load_data("digits").train[0][0], atol=0.01, rtol=0)


def test_the_strongest_randaugment_runs_every_operation() -> None:
    # magnitude 10, all 15 operations drawn: timm's posterize at 10 keeps 0 bits, Pillow refuses
    data = load_data("digits", randaugment="rand-m10-n15-mstd0.5-inc1")
    for i in range(50):
        assert data.train[i][0].shape == (1, 8, 8)


def test_an_image_folder_is_augmented_too(tmp_path) -> None:
    for name in ("cat", "dog"):
        (tmp_path / name).mkdir()
        for i in range(6):
            Image.new("RGB", (12, 10), (40 * i, 100, 200)).save(tmp_path / name / f"{i}.png")
    data = load_data("imagefolder", data_dir=tmp_path, img_size=8, random_erasing=1.0)
    x, _ = data.train[0]
    assert x.shape == (3, 8, 8) and data.val[0][0].shape == (3, 8, 8)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (dict(randaugment="auto-m9"), "randaugment is timm's spec"),
        (dict(randaugment="rand-x9"), "not a timm RandAugment spec"),
        (dict(random_erasing=1.5), "random_erasing is a probability"),
        (dict(ema=1.0), "ema is a decay"),
    ],
)
def test_bad_augmentation_and_ema_options_name_the_parameter(options, words) -> None:
    with pytest.raises(VitbenchError, match=words):
        TrainConfig(**options).validate()


def test_ema_and_augmentation_resume_exactly(tmp_path) -> None:
    cfg = TrainConfig(**TINY, ema=0.9, **AUGMENT)
    whole = train(cfg, store=open_store(tmp_path / "a"))
    rec = whole.record
    assert 0 <= rec["ema_test_acc"] <= 1 and rec["ema"] == 0.9
    assert all(0 <= e["ema_val_acc"] <= 1 for e in whole.epochs)
    ema = read_state_dict(whole.run_dir / ckpt.EMA_FILE)
    assert not torch.equal(ema["head.weight"], whole.model.state_dict()["head.weight"])
    store = open_store(tmp_path / "b")
    run = interrupted(cfg, store, after_epoch=1)
    resumed = train(resume=run.name, store=store)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    ema_b = read_state_dict(resumed.run_dir / ckpt.EMA_FILE)
    assert all(torch.equal(ema[k], ema_b[k]) for k in ema)
    assert resumed.record["ema_test_acc"] == rec["ema_test_acc"]


def test_a_state_saved_before_ema_existed_still_loads(tmp_path) -> None:
    from safetensors.torch import save_file

    state = ckpt.TrainState("r", {}, ckpt.Progress(), {"w": torch.ones(2)}, {}, {}, {}, [{}])
    tree = state.to_tree()
    del tree["ema"]  # as vitbench wrote states before weights EMA
    tensors, skeleton = ckpt.pack(tree)
    save_file(tensors, tmp_path / "old.safetensors", metadata={"skeleton": json.dumps(skeleton)})
    old = ckpt.load_state(tmp_path / "old.safetensors")
    assert old.ema == {} and torch.equal(old.model["w"], torch.ones(2))
