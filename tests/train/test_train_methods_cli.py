"""Distillation, transfer learning, weights EMA and augmentation from the command line, their
bad input, and how the report shows them."""

from __future__ import annotations

import json

import pytest

from vitbench.cli import main
from vitbench.report import build_report
from vitbench.store import read_table

TINY = ["--epochs", "2", "--subset", "96", "--batch-size", "32", "--threads", "1"]
SMALL = ["--model-kwargs", "depth=1,embed_dim=16,num_heads=2"]
DEIT = ["--model", "scratch_deit_tiny_distilled_patch16_224"]
DEIT += ["--model-kwargs", "patch_size=2,depth=1,embed_dim=16,num_heads=2"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def _json(capsys, store, *argv: str) -> dict:
    code, out, err = run(capsys, "train", *TINY, *argv, "--format", "json", "--out", str(store))
    assert code == 0, err
    return json.loads(out)


def test_each_method_runs_and_shows_in_the_report(capsys, store, tmp_path) -> None:
    teacher = _json(capsys, store, "--model", "scratch_mlp")
    weights = f"{teacher['run_dir']}/model.safetensors"
    student = _json(capsys, store, *DEIT, "--teacher", "scratch_mlp", "--teacher-checkpoint",
                    weights, "--distillation", "soft")  # fmt: skip
    assert student["distillation"] == "soft" and 0 <= student["test_acc_dist"] <= 1
    pre = _json(capsys, store, *SMALL, "--ema", "0.9", "--randaugment", "rand-m9-mstd0.5-inc1",
                "--random-erasing", "0.25")  # fmt: skip
    assert 0 <= pre["ema_test_acc"] <= 1 and pre["randaugment"] == "rand-m9-mstd0.5-inc1"
    pre_weights = f"{pre['run_dir']}/model.safetensors"
    probe = _json(capsys, store, *SMALL, "--checkpoint", pre_weights, "--freeze")
    assert probe["freeze"] and probe["trainable_params"] == 170
    code, out, err = run(capsys, "sweep", *TINY, *SMALL, "--grid", f"checkpoint=none,{pre_weights}",
                         "--layer-decay", "0.75", "--out", str(store))  # fmt: skip
    assert code == 0, err
    assert read_table(store, "sweep").checkpoint.fillna("none").tolist() == ["none", pre_weights]
    text = build_report([store], tmp_path / "report").read_text()
    assert "| class head | distillation head | teacher | EMA weights |" in text
    assert "soft distillation from scratch_mlp" in text and "EMA 0.9" in text
    assert "Pre-trained against from scratch" in text and "checkpoint, head only" in text
    assert f"…/{pre['run_id']}/model.safetensors" in text  # the sweep's checkpoint cell


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--distillation", "hard"], "distillation needs a teacher"),
        (
            [
                "--teacher",
                "scratch_mlp",
                "--distillation",
                "hard",
                "--teacher-checkpoint",
                "/nonexistent/t.safetensors",
            ],
            "checkpoint not found",
        ),  # fmt: skip
        (
            ["--teacher", "vit_tiny_patch16_224", "--distillation", "soft", "--teacher-pretrained"],
            "not in the hub cache",
        ),  # fmt: skip
        (["--pretrained", "--model", "vit_tiny_patch16_224"], "not in the hub cache"),
        (["--freeze", "--layer-decay", "0.7"], "nothing to decay"),
        (["--randaugment", "rand-x9"], "not a timm RandAugment spec"),
    ],
)
def test_bad_method_input_is_one_line_before_anything_is_written(capsys, store, argv, words):
    code, _, err = run(capsys, "train", *argv, "--out", str(store))
    assert code == 2 and words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # one message (rich may wrap a long line)
    assert not (store / "vitbench.db").exists()
