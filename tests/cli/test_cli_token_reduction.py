"""`--tome` and `--prune` through the console entry point: profile, analyze attention, train."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vitbench.cli import main
from vitbench.measure.closed_form import ViTShape, vit_macs
from vitbench.store import DB_FILE, read_table

VIT = "vit_tiny_patch16_224"
TINY = ["--img-size", "96", "--model-kwargs", "depth=4"]  # 36 patches and a class token
COUNT = ["--metrics", "params,flops", *TINY]
TRAIN = ["--epochs", "1", "--subset", "96", "--batch-size", "32", "--threads", "1"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def rows_in(store: Path, table: str) -> int:
    return len(read_table(store, table)) if (store / DB_FILE).exists() else 0


def test_profile_sweeps_the_points(capsys, store) -> None:
    argv = ["profile", VIT, *COUNT, "--tome", "0,2,4", "--prune", "0.5"]
    code, out, err = run(capsys, *argv, "--format", "json", "--out", str(store))
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["reduction"], r.get("tome_r"), r.get("prune_keep")) for r in rows] == [
        ("none", None, None), ("tome", 2, None), ("tome", 4, None), ("prune", None, 0.5)
    ]  # fmt: skip
    assert rows[0]["macs"] == vit_macs(ViTShape(img_size=96, depth=4, embed_dim=192, num_heads=3))
    assert [r["tokens_per_layer"] for r in rows[:3]] == [
        "37,37,37,37",
        "37,35,33,31",
        "37,33,29,25",
    ]
    assert rows_in(store, "profile") == 4
    code, out, err = run(capsys, *argv, "--no-save")
    assert code == 0 and "ToMe r" in out and "keep" in out


def test_profile_times_a_merged_point(capsys) -> None:
    argv = ["profile", VIT, *TINY, "--tome", "4", "--budget", "0.2", "--rounds", "1"]
    code, out, err = run(capsys, *argv, "--threads", "1", "--no-save", "--format", "json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["reduction"] for r in rows] == ["none", "tome"]
    assert all(r["latency_median_ms"] > 0 and r["throughput_sps"] > 0 for r in rows)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["profile", VIT, *COUNT, "--tome", "-1"], "tome_r must be a whole number"),
        (["profile", VIT, *COUNT, "--prune", "0"], "prune_keep must be a keep rate in (0, 1]"),
        (["profile", VIT, *COUNT, "--prune", "1.5"], "prune_keep must be a keep rate in (0, 1]"),
        (["profile", VIT, *COUNT, "--tome", "2,99"], "at most half (18) can be merged"),
        (["profile", VIT, *COUNT, "--tome", "two"], "tome_r must be integers"),
        (
            ["profile", "swin_tiny_patch4_window7_224", "--metrics", "params,flops", "--tome", "2"],
            "token merging supports timm's VisionTransformer",
        ),
        (["analyze", "attention", VIT, *TINY, "--tome", "99"], "can be merged"),
        (["analyze", "attention", VIT, "--prune", "-0.5"], "prune_keep must be a keep rate"),
        (["train", *TRAIN, "--tome", "-1"], "tome_r must be a whole number"),
        (["train", *TRAIN, "--tome", "9"], "can be merged"),
        (["train", *TRAIN, "--train-prune", "2"], "prune_keep must be a keep rate"),
        (["train", "--epochs", "0"], "0 tests the weights of checkpoint or pretrained"),
        (["sweep", "--grid", "tome=0,2"], "give it as --tome"),
    ],
)
def test_bad_input_is_one_line_and_stores_nothing(capsys, store, argv, words) -> None:
    code, _, err = run(capsys, *argv, "--out", str(store))
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.lower().startswith("error")]
    assert len(lines) == 1 and words in lines[0], err
    tables = ("profile", "attention", "train_epochs", "train_runs", "token_reduction")
    assert all(rows_in(store, t) == 0 for t in tables)


def test_analyze_attention_with_merging(capsys, store) -> None:
    argv = ["analyze", "attention", VIT, *TINY, "--tome", "2", "-n", "4", "-b", "2"]
    code, out, err = run(capsys, *argv, "--importance", "none", "--out", str(store))
    assert code == 0, err
    rows = read_table(store, "attention")
    rows = rows[rows["reduction"] == "tome"]  # the plain model is analysed first
    assert set(rows["tome_r"]) == {2} and set(rows["tokens_per_layer"]) == {"37,35,33,31"}
    heads = rows[rows["head"] == 0].sort_values("layer")
    assert heads["n_queries"].tolist() == [37, 35, 33, 31]
    assert heads["mean_distance_px"].notna().all()


def test_train_tests_each_point(capsys, store) -> None:
    argv = ["train", *TRAIN, "--tome", "0,2", "--out", str(store)]
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "token reduction" in out
    points = read_table(store, "token_reduction")
    (run_row,) = read_table(store, "train_runs").to_dict("records")
    assert points["reduction"].tolist() == ["none", "tome"]
    assert points["tome_r"].tolist()[1] == 2
    assert points["test_acc"][0] == run_row["test_acc"]  # the plain point is train's own test
    assert (points["run_id"] == run_row["run_id"]).all()


def test_analyze_attention_sweeps_the_points_as_profile_does(capsys, store, tmp_path) -> None:
    argv = ["analyze", "attention", VIT, *TINY, "--tome", "0,2", "--prune", "0.5", "-n", "2"]
    plots = tmp_path / "plots"
    argv += ["-b", "2", "--importance", "none", "--plots-dir", str(plots)]
    code, out, err = run(capsys, *argv, "--out", str(store))
    assert code == 0, err
    rows = read_table(store, "attention")
    runs = rows.groupby("run_id", sort=False)["reduction"].first().fillna("plain")
    assert runs.tolist() == ["plain", "tome", "prune"]  # the plain model first, once
    merged = rows[rows["reduction"] == "tome"]
    assert set(merged["tokens_per_layer"]) == {"37,35,33,31"}
    assert sorted(p.name for p in plots.iterdir()) == ["plain", "prune_keep0.5", "tome_r2"]
