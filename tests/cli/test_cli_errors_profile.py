"""Bad input to `vitbench profile` and `vitbench models`: one line naming it, exit 2, no rows.

One row per case, as in ``test_cli_errors.py``: the arguments, the exit code, and a piece of the
error line. ``STORE`` is a results directory that must hold no rows afterwards; ``BIGSPEC`` and
``PATHSPEC`` are tiny safetensors files whose stored spec is too big or names a file.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vitbench.cli import main
from vitbench.store import DB_FILE, read_table
from vitbench.zoo.weights import SPEC_METADATA_KEY

VIT = "vit_tiny_patch16_224"
COUNT = ["--metrics", "params,flops", "--img-size", "32", "--out", "STORE"]

CASES = [
    ([VIT, "--device", "meta", "--metrics", "params,latency"], "device 'meta' has no data"),
    ([VIT, "--device", "meta", "--metrics", "params,memory"], "cannot time or measure memory"),
    ([VIT, *COUNT, "--checkpoint", "BIGSPEC"], "does not fit the model"),
    ([VIT, *COUNT, "--checkpoint", "PATHSPEC"], "does not accept: checkpoint_path"),
    ([VIT, *COUNT, "--checkpoint", "missing.safetensors"], "checkpoint not found"),
    ([VIT, *COUNT, "--num-classes", "-3"], "num_classes must be at least 0, got -3"),
    ([VIT, *COUNT, "--in-chans", "0"], "in_chans must be at least 1, got 0"),
    ([VIT, *COUNT, "--warmup", "-5"], "warmup must be at least 0, got -5"),
    ([VIT, *COUNT, "--min-runs", "-1"], "min_runs must be at least 1, got -1"),
    ([VIT, *COUNT, "--min-runs", "5", "--max-runs", "3"], "max_runs must be at least min_runs"),
    ([VIT, *COUNT, "--rel-precision", "0"], "rel_precision must be positive"),
    ([VIT, *COUNT, "--rel-precision", "-0.1"], "rel_precision must be positive"),
    ([VIT, *COUNT, "--budget", "0"], "budget_s (the time budget) must be positive"),
    ([VIT, *COUNT[:2], "--img-size", "7", "--out", "STORE"], "smallest img_size is 16"),
    ([VIT, *COUNT, "--device", "tpu"], "unknown device 'tpu'; choose from cpu, cuda"),
    ([VIT, *COUNT, "--model-kwargs", "depth=abc"], "model kwarg depth wants int, got 'abc'"),
    ([VIT, *COUNT, "--mode", "trian"], "unknown mode(s) trian; choose from infer, train"),
    ([VIT, *COUNT, "--mode", "train", "--optimizer", "lion"], "optimizer must be one of adamw"),
    ([VIT, *COUNT, "--grad-checkpointing"], "grad_checkpointing applies to a training step"),
    (
        ["scratch_vit_tiny_patch16_224", *COUNT, "--mode", "train", "--grad-checkpointing"],
        "scratch_vit_tiny_patch16_224 has no gradient checkpointing switch",
    ),
    (
        [VIT, "--metrics", "params,latency", "--mode", "train", "--device", "cpu"]
        + ["--precision", "fp16", "--out", "STORE"],
        "fp16 autocast is a CUDA setting",
    ),
]
MODELS_CASES = [
    (["models", "--limit", "-5"], "limit must be a positive number"),
    (["models", "--limit", "0"], "limit must be a positive number"),
]


def _spec_file(path: Path, kwargs: dict) -> Path:
    """A one-tensor safetensors file whose metadata claims a spec of ``VIT`` with ``kwargs``."""
    spec = json.dumps(dict(name=VIT, kwargs=kwargs))
    save_file({"w": torch.zeros(1)}, str(path), metadata={SPEC_METADATA_KEY: spec})
    return path


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    big = dict(embed_dim=4096, depth=64, num_heads=64)
    return {
        "STORE": str(tmp_path / "out"),
        "BIGSPEC": str(_spec_file(tmp_path / "big.safetensors", big)),
        "PATHSPEC": str(_spec_file(tmp_path / "path.safetensors", {"checkpoint_path": "/x"})),
        "missing.safetensors": str(tmp_path / "missing.safetensors"),
    }


def _one_error_line(args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    error_lines = [line for line in err.splitlines() if line.lower().startswith("error")]
    assert len(error_lines) == 1 and message in error_lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(c[0][1:]) for c in CASES])
def test_bad_profile_input_is_one_line_and_stores_nothing(args, message, paths, capsys) -> None:
    args = ["profile", *(paths.get(a, a) for a in args)]
    if "--out" not in args:
        args += ["--out", paths["STORE"]]
    _one_error_line(args, message, capsys)
    store = Path(paths["STORE"])
    assert not (store / DB_FILE).exists() or read_table(store, "profile").empty


@pytest.mark.parametrize(
    ("args", "message"), MODELS_CASES, ids=[" ".join(c[0]) for c in MODELS_CASES]
)
def test_bad_models_input_is_one_line(args, message, capsys) -> None:
    _one_error_line(args, message, capsys)


def test_repeated_sizes_are_profiled_once(tmp_path: Path, capsys) -> None:
    args = ["profile", VIT, "--metrics", "params", "--img-size", "32,32", "-b", "1,1"]
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--out", str(tmp_path), "--format", "json"])
    out, err = capsys.readouterr()
    assert exit_.value.code == 0, err
    assert len(out.splitlines()) == 1 and len(read_table(tmp_path, "profile")) == 1
