"""torchvision's models, a user's file model and an imported package through the command line:
profile, analyze attention and train; bad specs are one line and exit code 2."""

from __future__ import annotations

import json
import sys

import pytest
import torchvision.models as tvm
from user_models import write_model_file, write_registering_package

from vitbench.cli import main
from vitbench.store import read_table

COUNT = ["--metrics", "params,flops", "--format", "json", "--no-save"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def rows(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_profile_torchvision_vit(capsys) -> None:
    """Against torchvision's own figures; its _ops counts products and convolutions only
    (see tests/zoo/test_sources.py), ours adds the layer norms: 0.1% more."""
    code, out, err = run(capsys, "profile", "torchvision:vit_b_16", *COUNT)
    assert code == 0, err
    (row,) = rows(out)
    meta = tvm.get_model_weights("vit_b_16").DEFAULT.meta
    assert row["model"] == "torchvision:vit_b_16" and row["img_size"] == 224
    assert row["params"] == meta["num_params"]
    assert row["macs"] / 1e9 == pytest.approx(meta["_ops"], rel=0.01)
    assert row["tokens"] == 197


def test_profile_a_file_model(capsys, tmp_path, store) -> None:
    spec = f"{write_model_file(tmp_path)}:tiny_vit"
    code, out, err = run(
        capsys, "profile", spec, "--img-size", "16,32", "--model-kwargs", "mlp_ratio=2",
        "--metrics", "params,flops", "--format", "json", "--out", str(store),
    )  # fmt: skip
    assert code == 0, err
    assert "warning: " in err and "mlp_ratio not applied" in err  # one line, not a traceback
    got = rows(out)
    assert [(r["model"], r["img_size"], r["tokens"]) for r in got] == [
        (spec, 16, 1 + 2 * 2), (spec, 32, 1 + 4 * 4),
    ]  # fmt: skip
    assert {r["not_applied"] for r in got} == {"mlp_ratio"}
    assert read_table(store, "profile")["not_applied"].tolist() == ["mlp_ratio"] * 2


def test_time_a_file_model(capsys, tmp_path) -> None:
    spec = f"{write_model_file(tmp_path)}:tiny_vit"
    code, out, err = run(
        capsys, "profile", spec, "--metrics", "latency", "--budget", "0.2", "--rounds", "1",
        "--format", "json", "--no-save",
    )  # fmt: skip
    assert code == 0, err
    (row,) = rows(out)
    assert row["latency_median_ms"] > 0 and row["img_size"] == 32  # the factory's default


def test_input_size_for_a_model_that_declares_none(capsys, tmp_path) -> None:
    spec = f"{write_model_file(tmp_path)}:sizeless"
    code, out, err = run(capsys, "profile", spec, "--input-size", "3,24,40", *COUNT)
    assert code == 0, err
    (row,) = rows(out)
    assert (row["img_height"], row["img_size"], row["tokens"]) == (24, 40, 1 + 3 * 5)


def test_import_finds_a_registered_model(capsys, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # found in the working directory, as `python -m` would
    monkeypatch.setattr(sys, "path", list(sys.path))
    package, name = write_registering_package(tmp_path, monkeypatch)
    code, out, err = run(capsys, "profile", name, "--import", package, "--img-size", "16", *COUNT)
    assert code == 0, err
    (row,) = rows(out)
    assert (row["model"], row["img_size"], row["tokens"]) == (name, 16, 1 + 2 * 2)


def test_analyze_attention_of_a_file_model(capsys, tmp_path) -> None:
    spec = f"{write_model_file(tmp_path)}:tiny_vit"
    code, out, err = run(
        capsys, "analyze", "attention", spec, "-n", "2", "--importance", "none",
        "--format", "json", "--no-save",
    )  # fmt: skip
    assert code == 0, err
    heads = rows(out)
    assert [(r["layer"], r["head"]) for r in heads] == [(0, 0), (0, 1)]
    assert {r["model"] for r in heads} == {spec} and {r["img_size"] for r in heads} == {"32x32"}
    assert all(r["entropy"] > 0 for r in heads)


def test_train_a_file_model(capsys, tmp_path, store) -> None:
    spec = f"{write_model_file(tmp_path)}:tiny_vit"
    code, out, err = run(
        capsys, "train", "--model", spec, "--in-chans", "3", "--epochs", "1", "--subset", "200",
        "--batch-size", "50", "--format", "json", "--out", str(store),
    )  # fmt: skip
    assert code == 0, err
    (rec,) = rows(out)
    assert rec["model"] == spec and rec["img_size"] == 8 and 0 <= rec["test_acc"] <= 1
    assert rec["not_applied"] is None  # tiny_vit takes img_size, in_chans and num_classes


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["profile", "torchvision:vit_b_61"], "did you mean torchvision:vit_b_16"),
        (["profile", "DIR/missing.py:f"], "model file not found"),
        (["profile", "FILE:tiny_vt"], "has no attribute 'tiny_vt'; did you mean tiny_vit"),
        (["profile", "FILE:not_a_model"], "returned a value of type str"),
        (["profile", "FILE:sizeless"], "declares no input size: input_size"),
        (["profile", "FILE:sizeless", "--input-size", "3,24"], "input_size must be three"),
        (["profile", "vit_tiny_patch16_224", "--import", "no_such_pkg_zz"], "cannot import"),
        (["profile", "torchvision:resnet18", "--pretrained", "--no-save"], "torch hub cache"),
        (["analyze", "attention", "FILE:sizeless", "-n", "2"], "input_size"),
        (["train", "--model", "FILE:tiny_vt"], "has no attribute"),
        (["train", "--model", "x_zz", "--import", "no_such_pkg_zz"], "cannot import"),
    ],
)
def test_bad_specs_are_one_line_and_exit_2(capsys, tmp_path, argv, words) -> None:
    path = str(write_model_file(tmp_path))
    argv = [a.replace("FILE", path).replace("DIR", str(tmp_path)) for a in argv]
    out_dir = tmp_path / "out"
    code, _, err = run(capsys, *argv, "--out", str(out_dir))
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert code == 2 and len(errors) == 1 and words in errors[0], err
    assert "Traceback" not in err
