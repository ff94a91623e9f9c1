"""Progressive resizing: the schedule, a ViT resized in place, a state written at one size
resumed at the next, and a progressive run from the command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
import torch
from interrupted import interrupted
from markdown_checks import markdown_tables
from timm.layers import resample_abs_pos_embed

from vitbench.cli import main
from vitbench.errors import VitbenchError
from vitbench.measure.model_cost import count_model
from vitbench.report import build_report
from vitbench.store import open_store, read_table
from vitbench.train import checkpoint as ckpt
from vitbench.train.config import TrainConfig
from vitbench.train.resize import SizeSchedule, check_resizable, resize_model
from vitbench.train.run import train
from vitbench.zoo import ModelSpec, create_model

TINY = dict(depth=1, embed_dim=16, num_heads=2, mlp_ratio=2.0)


def _vit(img_size: int, patch: int = 4, name: str = "scratch_vit_tiny_patch16_224", **kw):
    spec = ModelSpec(name, img_size=img_size, in_chans=1, num_classes=10,
                     kwargs={**TINY, "patch_size": patch, **kw})  # fmt: skip
    return create_model(spec)


def test_a_schedule_gives_each_epoch_the_last_size_started() -> None:
    schedule = SizeSchedule.parse("16:0,24:0.5,32:0.8")
    assert schedule == SizeSchedule((16, 24, 32), (0.0, 0.5, 0.8))
    # of 10 epochs: 0..4 start before half the run, 5..7 before 0.8 of it, 8 and 9 after
    sizes = [schedule.size_at(e, 10) for e in range(10)]
    assert sizes == [16] * 5 + [24] * 3 + [32] * 2
    # of 3 epochs, starting at 0, 1/3 and 2/3 of the run: none reaches 0.8
    assert [schedule.size_at(e, 3) for e in range(3)] == [16, 16, 24]
    assert [SizeSchedule.parse("8:0").size_at(e, 4) for e in range(4)] == [8] * 4


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("16", "SIZE:START"),
        ("a:0", "SIZE:START"),
        ("16:0.1,24:0.5", "starts at 0"),
        ("16:0,24:0.5,32:0.4", "rise within [0, 1)"),
        ("16:0,24:1", "rise within [0, 1)"),
        ("0:0,16:0.5", "positive"),
    ],
)
def test_a_bad_schedule_is_one_line(text: str, words: str) -> None:
    with pytest.raises(VitbenchError, match=re.escape(words)):
        SizeSchedule.parse(text)


def test_every_size_needs_an_epoch_and_a_whole_number_of_patches() -> None:
    schedule = SizeSchedule.parse("8:0,16:0.1,32:0.2")
    with pytest.raises(VitbenchError, match="size 16 no epoch of 4"):
        schedule.check_epochs(4)  # epoch 1 is at 0.25: past both 0.1 and 0.2
    schedule.check_epochs(10)
    with pytest.raises(VitbenchError, match="size 10 is not a multiple of the patch size 4"):
        check_resizable(_vit(8), SizeSchedule.parse("8:0,10:0.5"))
    with pytest.raises(VitbenchError, match="cannot change its image size"):
        check_resizable(create_model(ModelSpec("scratch_mlp", 8, 1, 10)), schedule)
    for bad, words in ((dict(img_size=8), "not both"), (dict(epochs=0), "at least one")):
        with pytest.raises(VitbenchError, match=words):
            TrainConfig(img_size_schedule="8:0,16:0.5", **bad).validate()


def test_resizing_the_scratch_vit_resamples_its_table_as_timm_does() -> None:
    model = _vit(8)  # grid 2 x 2, 1 + 4 positions
    table = model.pos_embed.weight
    torch.nn.init.normal_(table)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    optimizer.step()
    moment = optimizer.state[table]["exp_avg"].clone()
    before = table.detach().clone()
    resize_model(model, 16, optimizer)  # grid 4 x 4
    table = model.pos_embed.weight
    expected = resample_abs_pos_embed(before, [4, 4], [2, 2], num_prefix_tokens=1)
    assert torch.equal(table.detach(), expected)
    assert any(p is table for p in optimizer.param_groups[0]["params"])  # trained from here on
    assert torch.equal(optimizer.state[table]["exp_avg"], resample_abs_pos_embed(
        moment, [4, 4], [2, 2], num_prefix_tokens=1))  # fmt: skip
    assert model(torch.randn(3, 1, 16, 16)).shape == (3, 10)
    with pytest.raises(ValueError, match="input size"):
        model(torch.randn(3, 1, 8, 8))


def test_a_table_constant_over_the_grid_stays_constant_and_timm_vits_resize_alike() -> None:
    scratch = _vit(8)
    timm_vit = _vit(8, name="vit_tiny_patch16_224")
    with torch.no_grad():
        scratch.pos_embed.weight.fill_(0.5)
        timm_vit.pos_embed.copy_(scratch.pos_embed.weight)
    resize_model(scratch, 12)
    resize_model(timm_vit, 12)
    table = timm_vit.pos_embed
    assert table.shape == (1, 1 + 9, 16)
    assert torch.allclose(scratch.pos_embed.weight, torch.full((1, 10, 16), 0.5))
    assert torch.equal(table, scratch.pos_embed.weight)
    assert timm_vit(torch.randn(2, 1, 12, 12)).shape == (2, 10)


def test_a_state_written_at_16_px_resumes_at_24_px_as_if_never_stopped(tmp_path) -> None:
    cfg = TrainConfig(epochs=2, img_size_schedule="16:0,24:0.5", subset=64, batch_size=32,
                      device="cpu", threads=1, model_kwargs={**TINY, "patch_size": 4})  # fmt: skip
    whole = train(cfg, store=open_store(tmp_path / "a"))
    store = open_store(tmp_path / "b")
    run_dir = interrupted(cfg, store, after_epoch=1)
    state = ckpt.load_state(run_dir / ckpt.STATE_FILE)
    assert state.model["pos_embed.weight"].shape == (1, 1 + 16, 16)  # 16 px: 4 x 4 patches
    resumed = train(resume=run_dir.name, store=store)
    assert [r["img_size"] for r in resumed.epochs] == [16, 24]
    assert resumed.model.pos_embed.weight.shape == (1, 1 + 36, 16)  # 24 px: 6 x 6 patches
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.record["test_acc"] == whole.record["test_acc"]


def test_a_progressive_run_from_the_command_line_records_each_epoch_size(capsys, store, tmp_path):
    argv = ["train", "--epochs", "4", "--img-size-schedule", "8:0,16:0.5", "--subset", "64",
            "--batch-size", "32", "--threads", "1", "--model-kwargs",
            "depth=1,embed_dim=16,num_heads=2,mlp_ratio=2", "--format", "json",
            "--out", str(store)]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0, capsys.readouterr().err
    record = json.loads(capsys.readouterr().out)
    assert record["img_size_schedule"] == "8:0,16:0.5" and record["img_size"] == 16
    epochs = read_table(store, "train_epochs")
    assert epochs.img_size.tolist() == [8, 8, 16, 16]
    assert (epochs.images_per_s > 0).all()
    # MACs per image at each size: counted, and by hand for patch 2, width 16, one block of
    # MLP ratio 2, 10 classes: N D p^2 + T (3 D^2 + D^2 + 2 D 2D) + 2 T^2 D + D 10, T = N + 1
    spec = dict(name=record["model"], in_chans=1, num_classes=10, kwargs={**TINY, "patch_size": 2})
    counted = {s: count_model(ModelSpec(img_size=s, **spec), batch_size=1).macs for s in (8, 16)}

    def by_hand(n: int) -> int:
        return n * 16 * 4 + (n + 1) * (3 * 256 + 256 + 2 * 16 * 32) + 2 * (n + 1) ** 2 * 16 + 160

    assert counted[16] / counted[8] == pytest.approx(by_hand(64) / by_hand(16), rel=0.05)
    assert counted[16] > 5 * counted[8]  # the 8 px epochs cost under a fifth per image
    text = build_report([store], tmp_path / "report").read_text()
    sizes = next(t for t in markdown_tables(text) if "image side (px)" in t.columns)
    assert sizes[["image side (px)", "epochs"]].values.tolist() == [["8", "1–2"], ["16", "3–4"]]
    assert "image sizes 8:0,16:0.5" in text  # the run's methods


def test_a_model_that_cannot_resize_is_refused_before_anything_is_written(capsys, store):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--model", "scratch_mlp", "--img-size-schedule", "8:0,16:0.5",
              "--epochs", "2", "--out", str(store)])  # fmt: skip
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "cannot change its image size" in err
    assert len(err.strip().splitlines()) == 1
    assert not (store / "runs").exists()


@pytest.mark.slow
def test_two_gloo_processes_resize_as_one_does(tmp_path) -> None:
    args = ["-m", "vitbench", "train", "--epochs", "4", "--img-size-schedule", "8:0,16:0.5",
            "--subset", "128", "--batch-size", "32", "--device", "cpu", "--model-kwargs",
            "depth=1,embed_dim=16,num_heads=2", "--format", "json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    for name, launch in (("one", []), ("two", two)):
        cmd = [sys.executable, *launch, *args, "--out", str(tmp_path / name)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = (read_table(tmp_path / name, "train_epochs") for name in ("one", "two"))
    assert one.img_size.tolist() == two.img_size.tolist() == [8, 8, 16, 16]
    assert two.train_loss.tolist() == pytest.approx(one.train_loss.tolist(), rel=1e-5)
