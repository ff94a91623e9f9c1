"""`vitbench profile` and `vitbench models` end to end, through the console entry point."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vitbench.cli import main
from vitbench.measure.closed_form import ViTShape, vit_macs, vit_macs_terms
from vitbench.store import DB_FILE, read_table

TINY = ["--img-size", "32", "--model-kwargs", "patch_size=8,embed_dim=32,depth=1,num_heads=2"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def stored(directory: Path, table: str = "profile") -> pd.DataFrame:
    """The rows of a results directory's store; empty when there is no store at all."""
    return read_table(directory, table) if (directory / DB_FILE).exists() else pd.DataFrame()


def test_count_only_json_records(capsys, store) -> None:
    code, out, err = run(
        capsys, "profile", "vit-ti", "--metrics", "params,flops", "-b", "1,4",
        *TINY, "--format", "json", "--out", str(store),
    )  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["batch_size"] for r in rows] == [1, 4]
    shape = ViTShape(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2)
    for r in rows:
        assert r["model"] == "vit_tiny_patch16_224"
        assert r["tokens"] == 17 and r["img_size"] == 32
        assert r["macs"] == vit_macs(shape)  # per sample
        assert r["macs_batch"] == r["batch_size"] * vit_macs(shape)  # b images: b times one
        assert "latency_median_ms" not in r  # a count-only run never times
    rows_in_store = stored(store)
    assert len(rows_in_store) == 2 and rows_in_store["env_torch"].notna().all()
    assert list(rows_in_store["point"]) == [r["point"] for r in rows] == [0, 1]


def test_timed_run_on_a_toy_model(capsys, store) -> None:
    code, out, err = run(
        capsys, "profile", "vit_tiny_patch16_224", *TINY, "--budget", "0.3", "--warmup", "1",
        "--threads", "1", "--format", "csv", "--out", str(store),
    )  # fmt: skip
    assert code == 0, err
    row = pd.read_csv(io.StringIO(out)).iloc[0]
    assert row["status"] == "ok" and row["threads"] == 1
    assert 0 < row["latency_median_ms"] <= row["latency_p99_ms"]
    assert row["latency_n"] >= 5
    assert row["throughput_sps"] == pytest.approx(1000 / row["latency_median_ms"])
    assert row["memory_peak_bytes"] > 0 and isinstance(row["memory_method"], str)
    assert row["peak_tflops"] > 0 and 0 < row["mfu"]


def test_sweep_fits_and_appends(capsys, store) -> None:
    args = ["profile", "vit-ti", "--metrics", "params,flops", "--img-size", "32,64,128"]
    args += ["--model-kwargs", "patch_size=8,embed_dim=32,depth=1,num_heads=2"]
    for _ in range(2):
        code, out, err = run(capsys, *args, "--out", str(store))
        assert code == 0, err
    assert len(stored(store)) == 6  # added, not overwritten
    fits = stored(store, "profile_fit")
    macs_fit = fits[fits["metric"] == "macs"].iloc[0]
    # the closed form's MACs at 17, 65 and 257 tokens, fitted by hand on log-log axes
    shapes = [
        ViTShape(img_size=s, patch_size=8, embed_dim=32, depth=1, num_heads=2)
        for s in (32, 64, 128)
    ]
    lx = np.log([sh.tokens for sh in shapes])
    ly = np.log([vit_macs(sh) for sh in shapes])
    slope = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
    assert macs_fit["exponent"] == pytest.approx(slope, rel=1e-9) and 1.0 < slope < 2.0
    assert macs_fit["exponent_high"] == pytest.approx((ly[2] - ly[1]) / (lx[2] - lx[1]), rel=1e-9)
    assert "power-law" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["profile", "vit_bse_patch16_224"], "vit_base_patch16_224"),
        (["profile", "vit-ti", "-b", "0"], "positive"),
        (["profile", "vit-ti", "-b", "x"], "integers"),
        (["profile", "vit-ti", "--metrics", "speed"], "unknown metric"),
        (["profile", "vit-ti", "--precision", "fp8"], "precision"),
        (["profile", "vit-ti", "--model-kwargs", "embed_dim=100,num_heads=3"], "cannot build"),
        (["profile", "vit-ti", "--checkpoint", "/nonexistent.safetensors"], "not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, store, argv, needle) -> None:
    code, out, err = run(capsys, *argv, "--out", str(store))
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert stored(store).empty


def test_a_failing_model_keeps_and_prints_the_models_before_it(capsys, store) -> None:
    code, out, err = run(
        capsys, "profile", "vit_tiny_patch16_224", "deit_tiny_patch16_224",
        "swin_tiny_patch4_window7_224", "--model-kwargs", "depth=2", "--img-size", "64",
        "--metrics", "params,flops,latency", "--budget", "0.1", "--warmup", "0", "--threads", "1",
        "--format", "json", "--out", str(store),
    )  # fmt: skip
    assert code == 2 and "swin_tiny_patch4_window7_224" in err.splitlines()[-1]
    printed = [json.loads(line) for line in out.splitlines()]
    assert [r["model"] for r in printed] == ["vit_tiny_patch16_224", "deit_tiny_patch16_224"]
    assert "2 record(s) finished before the failure" in err
    rows = stored(store)
    assert list(rows["model"]) == [r["model"] for r in printed]
    assert rows["latency_median_ms"].notna().all() and (rows["status"] == "ok").all()


def _random_bytes(path: Path) -> Path:
    path.write_bytes(os.urandom(4096))
    return path


@pytest.mark.parametrize(
    ("where", "needle"),
    [
        (lambda tmp: ["--out", str(_random_bytes(tmp / "file") / "results")], "cannot create"),
        (lambda tmp: ["--store", str(_random_bytes(tmp / "junk.db"))], "not a vitbench store"),
    ],
    ids=["out-under-a-file", "random-bytes"],
)
def test_an_unusable_store_fails_before_anything_is_built(capsys, tmp_path, where, needle):
    # the model kwargs cannot build: an error about them would mean the store came second
    bad_model = ["--model-kwargs", "embed_dim=100,num_heads=3"]
    store_args = where(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    code, out, err = run(capsys, "profile", "vit-ti", *bad_model, *store_args)
    assert code == 2 and needle in err and "cannot build" not in err
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_models_lists_aliases_and_counts(capsys) -> None:
    code, out, err = run(capsys, "models", "deit_base_distilled*", "--count", "--format", "json")
    assert code == 0, err
    row = json.loads(out.splitlines()[0])
    assert row["model"] == "deit_base_distilled_patch16_224"
    assert row["params"] == 87_338_192 and row["tokens"] == 198
    assert "deit-b-distilled" in row["aliases"]


def test_python_dash_m_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vitbench", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("vitbench ")


def test_breakdown_table_adds_up(capsys, store) -> None:
    code, out, err = run(
        capsys, "profile", "vit-ti", "--metrics", "params,flops", *TINY, "--breakdown", "1",
        "--format", "json", "--out", str(store),
    )  # fmt: skip
    assert code == 0, err
    row = json.loads(out.splitlines()[0])
    # the closed form's terms, grouped by the timm module they run in
    terms = vit_macs_terms(ViTShape(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2))
    final_norm = terms["layer_norms"] // 3  # three layer norms: two in the block, one after it
    in_blocks = ("qkv", "attn_scores", "attn_values", "attn_proj", "mlp")
    assert row["macs_by_module"] == {
        "patch_embed": terms["patch_embed"],
        "blocks": sum(terms[k] for k in in_blocks) + 2 * final_norm,
        "norm": final_norm,
        "head": terms["head"],
    }
    assert sum(row["macs_by_module"].values()) == row["macs"]
    code, out, err = run(
        capsys, "profile", "vit-ti", "--metrics", "params,flops", *TINY, "--breakdown", "1",
        "--out", str(store),
    )  # fmt: skip
    assert "share" in out and "blocks" in out and "patch_embed" in out
