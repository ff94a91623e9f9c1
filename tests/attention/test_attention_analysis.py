"""analyze_attention end to end on tiny models, images from every source, and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from vitbench.attention import AttentionOptions, ImageSource, analyze_attention
from vitbench.attention.images import image_batches
from vitbench.attention.plots import write_plots
from vitbench.errors import VitbenchError
from vitbench.store import open_store, read_table

TINY = dict(img_size=32, model_kwargs={"depth": 2})
PNG = b"\x89PNG\r\n\x1a\n"


def test_records_one_per_layer_and_head_with_importance_and_clusters(tmp_path):
    opts = AttentionOptions(n_images=5, batch_size=2, **TINY)
    a = analyze_attention("vit_small_patch16_224", ImageSource("digits"), opts)
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
    assert a.figures == {} and all(r["rollout_figure"] is None for r in a.records)
    paths = write_plots(a, tmp_path)
    assert len(paths) == 4 and all(p.stat().st_size > 0 for p in paths.values())


def test_one_analysis_stores_its_rows_and_its_rollout_figure(store_url, tmp_path):
    with open_store(store_url) as st:
        opts = AttentionOptions(n_images=2, importance="none", **TINY)
        a = analyze_attention("vit_small_patch16_224", None, opts, store=st, plots_dir=tmp_path)
    rows = read_table(store_url, "attention")
    assert len(rows) == len(a.records) == 12 and set(rows["run_id"]) == {a.run_id}
    name = a.figures["rollout"].name
    assert set(rows["rollout_figure"]) == {name} and (tmp_path / name).is_file()
    figures = read_table(store_url, "figures")
    assert list(zip(figures["run_id"], figures["name"], strict=True)) == [(a.run_id, name)]
    data = bytes(figures["data"].iloc[0])
    assert data.startswith(PNG) and data == (tmp_path / name).read_bytes()


def test_an_encoder_without_a_classifier_has_no_importance_to_give():
    """num_classes 0: the (B, D) features are no logits, labelled or not; distances still come."""
    opts = AttentionOptions(n_images=2, batch_size=2, num_classes=0, **TINY)
    with pytest.raises(VitbenchError, match="head importance needs a classifier") as err:
        analyze_attention("vit_small_patch16_224", ImageSource("digits"), opts)
    assert "\n" not in str(err.value)
    a = analyze_attention(
        "vit_small_patch16_224",
        ImageSource("digits"),
        opts.__class__(n_images=2, batch_size=2, num_classes=0, importance="none", **TINY),
    )
    assert all(r.get("importance") is None for r in a.records)
    assert all(r["mean_distance_px"] > 0 for r in a.records)


def test_window_attention_has_no_rollout_but_all_metrics(store):
    with open_store(store) as st:
        opts = AttentionOptions(
            img_size=56,
            model_kwargs=dict(depths=(1, 1, 1, 1), embed_dim=16, num_heads=(1, 1, 1, 1)),
            n_images=3,
            batch_size=3,
            importance="none",
        )
        a = analyze_attention("swin_tiny_patch4_window7_224", ImageSource("sample"), opts, store=st)
    assert a.rollout is None and any("rollout" in n for n in a.notes)
    assert a.records[0]["attention_kind"] == "window" and a.records[0]["labels"] is None
    assert sorted(a.figures) == ["attention_distance", "attention_entropy", "head_clusters"]
    assert a.figures["head_clusters"].parent == store / "plots" / a.run_id
    rows = read_table(store, "attention")
    assert len(rows) == len(a.records) and "rollout_figure" not in rows
    assert read_table(store, "figures").empty


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
        analyze_attention("vit_small_patch16_224", opts=AttentionOptions(fusion="median", **TINY))
    with pytest.raises(VitbenchError, match="discard"):
        analyze_attention("vit_small_patch16_224", opts=AttentionOptions(discard_ratio=1.0))


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
    figure = read_table(store, "figures").iloc[0]
    assert (
        set(table["rollout_figure"]) == {figure["name"]} and figure["run_id"] == rows[0]["run_id"]
    )
    assert bytes(figure["data"]).startswith(PNG) and (plots / figure["name"]).is_file()


def test_cli_default_figures_go_beside_the_store_and_no_save_writes_nothing(cli, store):
    args = ["analyze", "attention", "vit_small_patch16_224", "--img-size", "32"]
    args += ["--model-kwargs", "depth=2", "-n", "2", "--importance", "none", "--out", str(store)]
    result = cli(args)
    assert result.exit_code == 0, result.output
    run_id = read_table(store, "attention")["run_id"].iloc[0]
    assert len(list((store / "plots" / run_id).glob("*.png"))) == 4
    unsaved = store / "unsaved"
    result = cli(args[:-1] + [str(unsaved), "--no-save"])
    assert result.exit_code == 0, result.output
    assert not unsaved.exists()


def test_cli_checks_the_store_before_building_the_model(tmp_path, capsys):
    from vitbench.cli import main

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    cannot_build = ["--model-kwargs", "embed_dim=100,num_heads=3"]  # would fail second
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", "attention", "vit-s", *cannot_build, "--store", str(junk)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and "not a vitbench store" in err[0]
    assert junk.read_bytes() == b"not a database at all" * 100


def test_a_checkpoint_is_loaded_and_recorded(tmp_path):
    import timm
    from safetensors.torch import save_file

    model = timm.create_model("vit_small_patch16_224", img_size=32, depth=2, num_classes=10)
    path = tmp_path / "trained.safetensors"
    save_file(model.state_dict(), str(path))
    opts = AttentionOptions(
        checkpoint=path,
        img_size=32,
        model_kwargs={"depth": 2, "num_classes": 10},
        n_images=2,
        importance="none",
    )
    a = analyze_attention("vit_small_patch16_224", opts=opts)
    assert a.records[0]["weights"] == "checkpoint"
    assert a.records[0]["checkpoint"] == str(path)
