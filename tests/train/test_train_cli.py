"""`vitbench train` and `vitbench sweep` through the console entry point."""

from __future__ import annotations

import json

import pytest

from vitbench.cli import main
from vitbench.store import read_table

TINY = ["--epochs", "2", "--subset", "96", "--batch-size", "32"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_train_json_record_carries_test_acc_and_is_stored(capsys, store) -> None:
    code, out, err = run(capsys, "train", *TINY, "--format", "json", "--out", str(store))
    assert code == 0, err
    (line,) = out.splitlines()  # progress and notes went to stderr
    rec = json.loads(line)
    assert 0 <= rec["test_acc"] <= 1 and rec["epochs"] == 2
    assert rec["model"] == "scratch_vit_tiny_patch16_224" and rec["dataset"] == "digits"
    runs = read_table(store, "train_runs")
    assert runs.run_id.tolist() == [rec["run_id"]] and runs.test_acc[0] == pytest.approx(
        rec["test_acc"]
    )
    assert len(read_table(store, "train_epochs")) == 2
    assert rec["run_dir"] == str(store / "runs" / rec["run_id"])


def test_a_finished_run_is_not_resumed(capsys, store) -> None:
    code, out, _ = run(capsys, "train", *TINY, "--format", "json", "--out", str(store))
    run_id = json.loads(out)["run_id"]
    # a finished run is not trained or stored again
    code, _, err = run(capsys, "train", "--resume", run_id, "--out", str(store))
    assert code == 2 and f"run {run_id} has finished" in err
    assert len(read_table(store, "train_runs")) == 1


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--epochs", "-3"], "epochs must be at least 1"),
        (["--dataset", "imagenet"], "unknown dataset"),
        (["--model", "vit_nonexistent_zz"], "unknown model"),
        (["--dataset", "mnist", "--data-dir", "/nonexistent/mnist"], "MNIST/raw/train-images"),
        (["--resume", "no-such-run"], "nothing to resume"),
        (["--precision", "fp8"], "precision"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, store, argv, words) -> None:
    code, out, err = run(capsys, "train", *argv, "--out", str(store))
    assert code == 2
    assert words in err and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # one message (rich may wrap a long line)
    assert not (store / "vitbench.db").exists() or read_table(store, "train_runs").empty


def test_sweep_table_and_effects(capsys, store) -> None:
    code, out, err = run(
        capsys, "sweep", "--grid", "depth=1,2", "--epochs", "1", "--subset", "64",
        "--out", str(store), "--format", "csv",
    )  # fmt: skip
    assert code == 0, err
    rows = read_table(store, "sweep")
    assert rows.depth.tolist() == [1, 2] and rows.test_acc.between(0, 1).all()
    assert "depth=1" in out and "test_acc" in out.splitlines()[0]
    code, out, err = run(capsys, "sweep", "--grid", "depth", "--out", str(store))
    assert code == 2 and "key=v1,v2" in err


def test_the_run_id_is_announced_before_training(capsys, store) -> None:
    argv = ["train", "--epochs", "1", "--subset", "32", "--threads", "1", "--format", "json"]
    code, out, err = run(capsys, *argv, "--out", str(store))
    run_id = json.loads(out)["run_id"]
    assert code == 0 and f"--resume {run_id}" in err.split("epoch")[0]
