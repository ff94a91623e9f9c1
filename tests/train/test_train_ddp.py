"""Data parallelism: two gloo processes on the CPU train to the metrics of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vitbench.store import read_table

# Same data and global batch (1024 images: 32 batches of 32, no padding by the sampler); no
# dropout or mixup, so nothing random differs. The MLP baseline: a ViT's first epoch agrees as
# closely, but its early plateau amplifies the float rounding of a different reduction order
# into visibly different curves after a few hundred updates.
ARGS = ["train", "--model", "scratch_mlp", "--epochs", "5", "--subset", "1024",
        "--batch-size", "32", "--lr", "2e-3", "--device", "cpu", "--format", "json"]  # fmt: skip


def _run(cmd: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, proc.stdout  # only rank 0 prints
    return json.loads(lines[0])


@pytest.mark.slow
def test_two_gloo_processes_give_the_metrics_of_one(tmp_path) -> None:
    one = _run([sys.executable, "-m", "vitbench", *ARGS, "--out", str(tmp_path / "one")])
    two = _run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "vitbench", *ARGS, "--out", str(tmp_path / "two")]
    )  # fmt: skip
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert one["test_images"] == two["test_images"] == 360  # every test image once, no padding
    assert one["test_acc"] > 0.8  # it learned something worth comparing
    assert two["test_acc"] == pytest.approx(one["test_acc"], abs=1.5 / 360)  # at most one image
    assert two["test_loss"] == pytest.approx(one["test_loss"], rel=1e-5)
    assert sum(map(sum, two["confusion"])) == 360
    e1 = read_table(tmp_path / "one", "train_epochs")
    e2 = read_table(tmp_path / "two", "train_epochs")
    assert len(e2) == 5 and list(e2.train_images) == [1024] * 5  # rank 0 wrote the global count
    for col in ("train_loss", "val_loss", "lr"):
        assert e2[col].tolist() == pytest.approx(e1[col].tolist(), rel=1e-5)
    for col in ("train_acc", "val_acc"):
        assert e2[col].tolist() == pytest.approx(e1[col].tolist(), abs=1.5 / 180)
    assert len(read_table(tmp_path / "two", "train_runs")) == 1
    assert len(list((tmp_path / "two" / "runs").iterdir())) == 1
