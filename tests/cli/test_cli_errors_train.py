"""Bad input to train, sweep, analyze and report: one line naming it, exit 2, nothing stored.

One row per case: the arguments, the exit code, and a piece of the error line. Placeholders in
the arguments name files the test makes (see ``_paths``). Every case fails before the store is
opened, so the results directory is never created.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from vitbench.cli import main

TINY = ["--subset", "32", "--epochs", "1", "--threads", "1"]
MODEL = "scratch_vit_tiny_patch16_224"
SMALL = ["--model-kwargs", "patch_size=2,embed_dim=16,depth=1,num_heads=2", "--img-size", "8"]

CASES = [
    # 1. devices
    (["train", *TINY, "--device", "meta"], 2, "unknown device 'meta'; choose from cpu, cuda"),
    (["train", *TINY, "--device", "tpu"], 2, "unknown device 'tpu'; choose from cpu, cuda"),
    (["analyze", "attention", MODEL, *SMALL, "--device", "meta"], 2, "unknown device 'meta'"),
    # 2. inputs that were ignored or impossible
    (["train", *TINY, "--data-dir", "FOLDER"], 2, "data_dir is read only by the local datasets"),
    (["train", *TINY, "--img-size", "0"], 2, "img_size must be positive, got 0"),
    (["train", *TINY, "--warmup", "-0.1"], 2, "warmup is a share of the run"),
    (["train", "--epochs", "0"], 2, "epochs must be at least 1, got 0"),
    (["train", *TINY, "--batch-size", "0"], 2, "batch_size must be at least 1, got 0"),
    (["train", *TINY, "--lr", "0"], 2, "lr must be positive, got 0.0"),
    (["train", *TINY, "--lr", "-1"], 2, "lr must be positive, got -1.0"),
    (["train", "--resume", "ID", "--epochs", "3", "--lr", "0.5"], 2, "ignore --epochs, --lr"),
    # 3. degenerate data
    (["train", *TINY, "-d", "imagefolder", "--data-dir", "ONECLASS"], 2, "at least two"),
    (["train", *TINY, "-d", "imagefolder", "--data-dir", "TWOIMAGES"], 2, "at least 3 images"),
    (["train", *TINY, "-d", "imagefolder", "--data-dir", "CORRUPT"], 2, "bad.png"),
    # 4. raw library messages
    (["sweep", *TINY, "--grid", "embed_dim=abc"], 2, "grid key 'embed_dim' wants int values"),
    (["analyze", "attention", MODEL, *SMALL, "--clusters", "0"], 2, "n_clusters must be at least"),
    (["analyze", "attention", MODEL, *SMALL, "--projection", "umap"], 2, "projection must be one"),
    (["report", "CSV"], 2, "is a file, not a results store"),
    (["train", "--resume", "STATE"], 2, "is not a vitbench training state"),
    # 5. a failed command writes nothing
    (["analyze", "attention", MODEL, *SMALL, "--plots-dir", "CSV"], 2, "is not a directory"),
]


def _image_folder(root: Path, classes: dict[str, int], corrupt: bool = False) -> Path:
    """``root/<class>/<i>.png``: tiny images, and a file of random bytes if ``corrupt``."""
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (8, 8), (i * 20, 0, 0)).save(root / name / f"{i}.png")
    if corrupt:
        (root / next(iter(classes)) / "bad.png").write_bytes(bytes(range(256)))
    return root


def _paths(tmp: Path) -> dict[str, str]:
    """The files and folders the placeholders of ``CASES`` stand for."""
    (tmp / "folder").mkdir()
    (tmp / "table.csv").write_text("model,params\nvit,1\n")
    (tmp / "state").mkdir()
    (tmp / "state" / "last.safetensors").write_bytes(bytes(range(256)) * 4)
    return {
        "FOLDER": str(tmp / "folder"),
        "ONECLASS": str(_image_folder(tmp / "one", {"cat": 12})),
        "TWOIMAGES": str(_image_folder(tmp / "two", {"cat": 1, "dog": 1})),
        "CORRUPT": str(_image_folder(tmp / "corrupt", {"cat": 6, "dog": 6}, corrupt=True)),
        "CSV": str(tmp / "table.csv"),
        "STATE": str(tmp / "state" / "last.safetensors"),
        "ID": "some-run",
    }


@pytest.mark.parametrize(("args", "code", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_line_and_nothing_is_stored(
    args, code, message, tmp_path, capsys, monkeypatch
) -> None:
    monkeypatch.delenv("VITBENCH_STORE", raising=False)
    paths = _paths(tmp_path)
    out = tmp_path / "results"
    extra = [] if args[0] == "report" else ["--out", str(out)]
    with pytest.raises(SystemExit) as exit_:
        main([paths.get(a, a) for a in args] + extra)
    err = capsys.readouterr().err
    assert exit_.value.code == code, err
    error_lines = [line for line in err.splitlines() if line.lower().startswith("error")]
    assert len(error_lines) == 1 and message in error_lines[0], err
    assert "Traceback" not in err
    assert not out.exists()  # the store was never opened
