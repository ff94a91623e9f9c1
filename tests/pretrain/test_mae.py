"""MAE: the masking, the normalised-pixel target and the loss by hand, the encoder blind to the
hidden patches, a short pre-training that lowers the loss, and a checkpoint that fine-tunes."""

from __future__ import annotations

import math

import pytest
import torch

from vitbench.cli import main
from vitbench.errors import VitbenchError
from vitbench.pretrain import MAEConfig, MaskedAutoencoder, pretrain_mae
from vitbench.pretrain.mae import masked_loss, normalised_pixels, patchify, random_masking
from vitbench.store import open_store, read_table
from vitbench.train import TrainConfig
from vitbench.train.transfer import create_student
from vitbench.zoo import create_model
from vitbench.zoo.weights import read_spec_metadata, read_state_dict

KW = dict(patch_size=2, embed_dim=16, depth=2, num_heads=2, mlp_ratio=2.0)
TINY = dict(subset=128, batch_size=32, device="cpu", threads=1, model_kwargs=KW, decoder_dim=16)


@pytest.mark.parametrize(("n", "ratio"), [(16, 0.75), (49, 0.75), (64, 0.5), (10, 0.33)])
def test_masking_hides_the_stated_share_of_each_image(n: int, ratio: float) -> None:
    keep, mask = random_masking(32, n, ratio, generator=torch.Generator().manual_seed(0))
    hidden = round(ratio * n)
    assert mask.sum(1).tolist() == [hidden] * 32
    assert keep.shape == (32, n - hidden)
    for ids, row in zip(keep, mask, strict=True):
        assert len(set(ids.tolist())) == n - hidden  # distinct ids: part of a permutation
        assert row[ids].sum() == 0 and set(torch.nonzero(row == 0)[:, 0].tolist()) == set(
            ids.tolist()
        )
    assert len({tuple(sorted(ids.tolist())) for ids in keep}) > 1  # each image its own draw


def test_patches_and_their_normalised_pixels_by_hand() -> None:
    image = torch.arange(16.0).view(1, 1, 4, 4)  # rows 0..3, 4..7, 8..11, 12..15
    patches = patchify(image, 2)
    assert patches[0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]]
    # one patch 1, 2, 3, 4: mean 2.5, unbiased variance (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3
    target = normalised_pixels(torch.tensor([[[1.0, 2.0, 3.0, 4.0]]]))
    sd = math.sqrt(5 / 3 + 1e-6)
    assert target[0, 0].tolist() == pytest.approx([-1.5 / sd, -0.5 / sd, 0.5 / sd, 1.5 / sd])


def test_the_loss_counts_the_hidden_patches_only() -> None:
    target = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]])  # (1, 3 patches, 2 values)
    mask = torch.tensor([[1.0, 0.0, 1.0]])  # patches 0 and 2 hidden
    pred = torch.zeros(1, 3, 2)
    assert masked_loss(pred, target, mask).item() == pytest.approx((1 + 9) / 2)
    pred[0, 1] = 100.0  # a visible patch predicted badly: no change
    assert masked_loss(pred, target, mask).item() == pytest.approx(5.0)
    pred[0, 2] = 3.0  # a hidden patch predicted exactly
    assert masked_loss(pred, target, mask).item() == pytest.approx(0.5)


def test_the_encoder_sees_the_visible_patches_only() -> None:
    torch.manual_seed(0)
    spec = TrainConfig(model_kwargs=KW).model_spec(8, 1, 0)
    mae = MaskedAutoencoder(create_model(spec), decoder_dim=16).eval()
    x = torch.randn(2, 1, 8, 8)
    keep, mask = random_masking(2, 16, 0.75, generator=torch.Generator().manual_seed(1))
    hidden = torch.nn.functional.fold(  # 1 on the pixels of hidden patches
        mask[:, None].repeat(1, 4, 1), (8, 8), 2, stride=2
    )
    changed = x + 5 * hidden * torch.randn_like(x)
    assert not torch.equal(changed, x)
    assert torch.allclose(mae.encode(x, keep), mae.encode(changed, keep), atol=1e-6)


def test_a_short_pretraining_lowers_the_reconstruction_loss() -> None:
    rows = pretrain_mae(MAEConfig(**TINY, epochs=4, lr=3e-3)).epochs
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert {r["masked_patches"] for r in rows} == {12} and rows[0]["num_patches"] == 16


def test_the_encoder_fine_tunes_with_a_new_head(tmp_path, capsys) -> None:
    with open_store(tmp_path, artifacts=tmp_path) as store:
        result = pretrain_mae(MAEConfig(**TINY, epochs=1), store=store)
    path = result.checkpoint
    saved = read_state_dict(path)
    assert not any(k.startswith("head") for k in saved)  # the encoder alone
    assert read_spec_metadata(path)["kwargs"]["embed_dim"] == 16
    spec = TrainConfig(model_kwargs=KW).model_spec(8, 1, 10)
    model, new_head = create_student(spec, torch.device("cpu"), False, path)
    assert new_head and model.head.out_features == 10
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items() if k in saved)
    epochs = read_table(tmp_path, "pretrain_epochs")
    assert epochs.checkpoint.tolist() == [str(path)]
    assert read_table(tmp_path, "figures").name.tolist() == ["reconstruction.png"]
    argv = ["train", "--checkpoint", str(path), "--epochs", "1", "--subset", "96"]
    argv += ["--model-kwargs", "embed_dim=16,depth=2,num_heads=2", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0, capsys.readouterr().err
    run = read_table(tmp_path, "train_runs").iloc[0]
    assert run.start == "checkpoint" and run.new_head


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (dict(mask_ratio=1.0), "mask_ratio is a share in (0, 1)"),
        (dict(mask_ratio=0.0), "mask_ratio is a share in (0, 1)"),
        (dict(img_size=9), "not a multiple of patch size"),
        (dict(mask_ratio=0.99), "hides none or all of 16 patches"),
        (dict(decoder_dim=30), "multiple of 4"),
        (dict(dataset="cifar10"), "MAE pre-trains on digits, photos, sample"),
        (dict(model="vit_tiny_patch16_224"), "vitbench's ViTs"),
    ],
)
def test_bad_options_are_one_line_and_store_nothing(tmp_path, options, words) -> None:
    with pytest.raises(VitbenchError, match=words.replace("(", r"\(").replace(")", r"\)")) as info:
        with open_store(tmp_path / "results", artifacts=tmp_path / "results") as store:
            pretrain_mae(MAEConfig(**{**TINY, **options}), store=store)
    assert "\n" not in str(info.value)
    assert read_table(tmp_path / "results", "pretrain_epochs").empty
    assert not (tmp_path / "results" / "runs").exists()


def test_the_command_refuses_bad_input_before_opening_the_store(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "mae", "--mask-ratio", "1.5", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "out").exists()
