"""`vitbench train --task segmentation` on the embedded digits canvas: records, a figure and the
report's section; bad input is one line before anything is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from markdown_checks import image_links, markdown_tables

from vitbench.cli import main
from vitbench.report import build_report
from vitbench.store import read_table

SEG = ["train", "--task", "segmentation", "-d", "digits_canvas", "--threads", "1"]
SHORT = ["--model-kwargs", "patch_size=4", "--decoder", "setr-pup", "--subset", "256"]
SHORT += ["--epochs", "4", "--batch-size", "16", "--lr", "3e-3", "--label-smoothing", "0"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_short_run_beats_all_background_and_shows_in_the_report(capsys, store, tmp_path) -> None:
    code, out, err = run(capsys, *SEG, *SHORT, "--format", "json", "--out", str(store))
    assert code == 0, err
    rec = json.loads(out)
    runs, epochs = read_table(store, "train_runs"), read_table(store, "train_epochs")
    assert runs["task"].tolist() == ["segmentation"] and len(epochs) == 4
    assert epochs["val_miou"].notna().all() and (epochs["task"] == "segmentation").all()
    # predicting background everywhere: IoU of background is its share of the pixels, 0 else
    matrix = np.asarray(rec["confusion"])
    baseline = matrix[0].sum() / matrix.sum() / len(rec["classes"])
    assert rec["miou"] > baseline + 0.01, (rec["miou"], baseline)
    assert len(rec["iou"]) == 11 and rec["pixel_acc"] == pytest.approx(rec["test_acc"])
    assert (store / "runs" / rec["run_id"] / "overlays.png").stat().st_size > 0
    text = build_report([store], tmp_path / "report").read_text()
    assert "## Semantic segmentation" in text and "## Training" not in text
    (table,) = [t for t in markdown_tables(text) if "test mIoU" in t]
    assert table["test mIoU"].tolist() == [f"{100 * rec['miou']:.1f}%"]
    (per_class,) = [t for t in markdown_tables(text) if "class" in t]
    assert per_class["class"].iloc[0] == "background"  # the most labelled class first
    assert f"figures/segmentation_{rec['run_id']}.png" in image_links(text)


def test_ade20k_tree_trains_with_other_ignored(capsys, store, ade_tree) -> None:
    tiny = ["--model-kwargs", "patch_size=4,embed_dim=16,depth=1,num_heads=2", "--img-size", "16"]
    tiny += ["--epochs", "1", "--batch-size", "1", "--val-fraction", "0.5", "--format", "json"]
    argv = [*SEG[:4], "ade20k", "--data-dir", str(ade_tree), *tiny, "--out", str(store)]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    rec = json.loads(out)
    assert rec["num_classes"] == len(rec["iou"]) == 150
    matrix = np.asarray(rec["confusion"])
    # the test image's 256 pixels: 128 of label 1 (wall), 64 of label 150 (flag), 64 "other"
    assert matrix.sum() == 192 and matrix[0].sum() == 128 and matrix[149].sum() == 64


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--task", "segmentation"], "needs a dataset with masks"),
        (["train", "-d", "digits_canvas"], "digits_canvas holds masks, not image labels"),
        ([*SEG, "--mixup", "0.2"], "segmentation does not train with mixup"),
        ([*SEG, "--decoder", "upernet"], "decoder is one of linear, setr-pup"),
        ([*SEG, "-m", "scratch_mlp"], "needs a ViT or BEiT encoder"),
        ([*SEG[:4], "ade20k", "--data-dir", "NOWHERE"], "ade20k needs a data_dir holding"),
    ],
)
def test_bad_input_is_one_line_before_anything_is_written(capsys, tmp_path, argv, message) -> None:
    out = tmp_path / "results"
    argv = [str(tmp_path / "nowhere") if a == "NOWHERE" else a for a in argv]
    code, _, err = run(capsys, *argv, "--out", str(out))
    errors = [line for line in err.splitlines() if line.lower().startswith("error")]
    assert code == 2 and len(errors) == 1 and message in errors[0], err
    assert not out.exists()
