"""The report's pre-training section: each MAE run, and MAE against from scratch for the same
number of epochs, paired from stored rows."""

from __future__ import annotations

from markdown_checks import image_links, markdown_tables
from report_fixtures import env, write

from vitbench.report import build_report

SHAPE = dict(model="vit", dataset="digits", img_size=8, in_chans=1, seed=0, train_images=1257)
CKPT = "/results/runs/mae-1/model.safetensors"


def _epochs() -> list[dict]:
    """An MAE run of 3 epochs, 12 of 16 patches hidden, 1.5 s an epoch."""
    return [
        {
            **SHAPE,
            "epoch": e,
            "epochs": 3,
            "num_patches": 16,
            "masked_patches": 12,
            "train_loss": loss + 0.01,
            "val_loss": loss,
            "epoch_s": 1.5,
            "checkpoint": CKPT,
        }
        for e, loss in ((1, 0.6), (2, 0.5), (3, 0.45))
    ]


def _run(epochs: int, acc: float, seconds: float, checkpoint: str | None) -> dict:
    start = "checkpoint" if checkpoint else "scratch"
    config = {"checkpoint": checkpoint, "epochs": epochs}
    return {**SHAPE, "epochs": epochs, "test_acc": acc, "train_s": seconds, "start": start,
            "config": config}  # fmt: skip


def test_the_section_pairs_a_fine_tune_with_scratch_of_as_many_epochs(tmp_path) -> None:
    path = tmp_path / "results"
    write(_epochs(), path, "pretrain_epochs", "mae-1", env())
    write([_run(2, 0.9, 4.0, CKPT)], path, "train_runs", "ft-1", env())
    write([_run(5, 0.8, 10.0, None)], path, "train_runs", "scratch-5", env())
    write([_run(2, 0.7, 4.0, None)], path, "train_runs", "scratch-2", env())  # too short
    write([{**_run(5, 0.6, 9.0, None), "seed": 1}], path, "train_runs", "seed-1", env())
    text = build_report([path], tmp_path / "out").read_text()
    assert "## Pre-training (MAE)" in text
    tables = markdown_tables(text)
    mae = next(t for t in tables if "patches hidden" in t.columns).iloc[0]
    assert mae["patches hidden"] == "12 of 16"
    assert (mae["val loss, epoch 1"], mae["val loss, last"]) == ("0.600", "0.450")
    assert mae["pre-training (s)"] == "4.5"  # 3 epochs of 1.5 s
    pairs = next(t for t in tables if "MAE run" in t.columns)
    assert len(pairs) == 1
    row = pairs.iloc[0]
    assert row["MAE run"] == "3 MAE + 2 fine-tuning" and row["epochs from scratch"] == "5"
    assert (
        row["test accuracy after MAE"] == "90.0%" and row["test accuracy from scratch"] == "80.0%"
    )
    assert row["seconds (both)"] == "8.5" and row["seconds"] == "10.0"  # 4.5 + 4.0 against 10
    assert "figures/mae_loss.png" in image_links(text)
