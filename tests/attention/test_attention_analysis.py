"""analyze_attention end to end on tiny models, images from every source, and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from vitbench.attention import ImageSource, analyze_attention
from vitbench.attention.images import image_batches
from vitbench.attention.plots import write_plots
from vitbench.errors import VitbenchError
from vitbench.store import read_table

TINY = dict(img_size=32, model_kwargs={"depth": 2})


def test_records_one_per_layer_and_head_with_importance_and_clusters(tmp_path):
    a = analyze_attention(
        "vit_small_patch16_224", ImageSource("digits"), n_images=5, batch_size=2, **TINY
    )
    assert len(a.records) == 2 * 6
    assert [(r["layer"], r["head"]) for r in a.records] == [
        (i, h) for i in range(2) for h in range(6)
    ]
    rec = a.records[0]
    for key in ("model", "mean_distance_px", "entropy", "entropy_norm", "cls_attention"):
        assert rec[key] is not None and not (isinstance(rec[key], float) and math.isnan(rec[key]))
    assert rec["n_images"] == 5 and rec["labels"] == "dataset" and rec["weights"] == "random"
    assert all(0 < r["mean_distance_px"] < math.hypot(32, 32) for r in a.records)
    assert {r["cluster"] for r in a.records} <= set(range(12))
    assert a.rollout.shape == (5, 2, 2) and a.rollout_pixels.shape == (5, 32, 32, 3)
    assert np.allclose(a.rollout.sum(axis=(1, 2)) <= 1.0 + 1e-6, True)
    paths = write_plots(a, tmp_path)
    assert len(paths) == 4 and all(p.stat().st_size > 0 for p in paths)


def test_window_attention_has_no_rollout_but_all_metrics(tmp_path):
    a = analyze_attention(
        "swin_tiny_patch4_window7_224",
        ImageSource("sample"),
        img_size=56,
        model_kwargs=dict(depths=(1, 1, 1, 1), embed_dim=16, num_heads=(1, 1, 1, 1)),
        n_images=3,
        batch_size=3,
        importance="none",
    )
    assert a.rollout is None and any("rollout" in n for n in a.notes)
    assert a.records[0]["attention_kind"] == "window" and a.records[0]["labels"] is None
    assert len(write_plots(a, tmp_path)) == 3


def test_image_folders_are_resized_to_the_model(tmp_path):
    from PIL import Image

    for i, size in enumerate([(40, 30), (20, 50)]):
        Image.fromarray(np.full((*size, 3), 60 * i, np.uint8)).save(tmp_path / f"im{i}.png")
    batches = list(image_batches(ImageSource("files", tmp_path), 8, 8, (3, 32, 48)))
    assert len(batches) == 1 and batches[0].x.shape == (2, 3, 32, 48)
    assert batches[0].labels is None and batches[0].pixels.shape == (2, 32, 48, 3)
    with pytest.raises(VitbenchError, match="no image"):
        list(image_batches(ImageSource("files", tmp_path / "missing"), 1, 1, (3, 8, 8)))


def test_bad_options_are_errors():
    with pytest.raises(VitbenchError, match="fusion"):
        analyze_attention("vit_small_patch16_224", fusion="median", **TINY)
    with pytest.raises(VitbenchError, match="discard"):
        analyze_attention("vit_small_patch16_224", discard_ratio=1.0, **TINY)


@pytest.fixture
def cli():
    from typer.testing import CliRunner

    import vitbench.cli.analyze  # noqa: F401  (registers the sub-app)
    from vitbench.cli.app import app

    return lambda args: CliRunner().invoke(app, args)


def test_cli_writes_the_attention_table_and_the_figures(cli, store, tmp_path, capsys):
    plots = tmp_path / "figs"
    args = ["analyze", "attention", "vit_small_patch16_224", "--img-size", "32"]
    args += ["--model-kwargs", "depth=2", "-n", "4", "-b", "2", "--out", str(store)]
    result = cli(args + ["--plots-dir", str(plots), "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 12 and rows[0]["model"] == "vit_small_patch16_224"
    table = read_table(store, "attention")
    assert len(table) == 12 and table["mean_distance_px"].notna().all()
    assert table["env_torch"].iloc[0] == torch.__version__
    assert len(list(plots.glob("*.png"))) == 4


def test_cli_rejects_two_image_sources(cli, store):
    result = cli(
        ["analyze", "attention", "vit_small_patch16_224", "--sample-images", "--dataset", "digits"]
    )
    assert result.exit_code != 0


def test_a_checkpoint_is_loaded_and_recorded(tmp_path):
    import timm
    from safetensors.torch import save_file

    model = timm.create_model("vit_small_patch16_224", img_size=32, depth=2, num_classes=10)
    path = tmp_path / "trained.safetensors"
    save_file(model.state_dict(), str(path))
    a = analyze_attention(
        "vit_small_patch16_224",
        checkpoint=path,
        img_size=32,
        model_kwargs={"depth": 2, "num_classes": 10},
        n_images=2,
        importance="none",
    )
    assert a.records[0]["weights"] == "checkpoint"
    assert a.records[0]["checkpoint"] == str(path)
