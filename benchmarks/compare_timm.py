"""Side-by-side CPU throughput: timm's own benchmark.py against `vitbench profile`.

timm's `benchmark.py` lives in timm's repository, not in its wheel: pass the path of a copy.
Both tools run the same model, batch size, precision (fp32) and thread count, alternately
(timm, vitbench, timm, vitbench, ...) so that drifting load on a shared machine hits both
alike. Prints each tool's samples/s per round, the median ratio, and the run-to-run spread
that timm's single mean hides. ``train`` compares training steps: timm's ``--bench train``
(SGD, its default) against ``vitbench profile --mode train --optimizer sgd``.

    python benchmarks/compare_timm.py /path/to/timm/benchmark.py vit_small_patch16_224 8 3
    python benchmarks/compare_timm.py /path/to/timm/benchmark.py vit_tiny_patch16_224 8 3 train
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

#: the bench: (timm's --bench, its result key, vitbench's options)
BENCHES = {
    "infer": ("inference", "infer_samples_per_sec", ["--mode", "infer"]),
    "train": ("train", "train_samples_per_sec", ["--mode", "train", "--optimizer", "sgd"]),
}


def timm_run(script: Path, model: str, batch: int, threads: int, out: Path, bench: str) -> float:
    timm_bench, key, _ = BENCHES[bench]
    subprocess.run(
        [
            sys.executable, str(script), "--device", "cpu", "--bench", timm_bench,
            "--model", model, "-b", str(batch), "--num-warm-iter", "10",
            "--num-bench-iter", "50", "--precision", "float32", "--no-retry",
            "--results-file", str(out), "--results-format", "json",
        ],
        check=True, capture_output=True, text=True,
        env={**os.environ, "OMP_NUM_THREADS": str(threads)},
    )  # fmt: skip
    rows = json.loads(out.read_text())
    row = rows[0] if isinstance(rows, list) else rows
    return float(row[key])


def vitbench_run(
    model: str, batch: int, threads: int, store: Path, bench: str
) -> tuple[float, float]:
    proc = subprocess.run(
        [
            sys.executable, "-m", "vitbench", "profile", model, "-b", str(batch),
            *BENCHES[bench][2],
            "--metrics", "latency", "--threads", str(threads), "--precision", "fp32",
            "--warmup", "10", "--budget", "5", "--rel-precision", "0.005",
            "--format", "json", "--out", str(store),
        ],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    row = json.loads(proc.stdout.splitlines()[0])
    return float(row["throughput_sps"]), float(row["latency_cv"])


def main(
    script: str,
    model: str = "vit_small_patch16_224",
    batch: int = 8,
    rounds: int = 3,
    bench: str = "infer",
) -> None:
    threads = torch.get_num_threads()
    timm_sps, ours, cvs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            timm_sps.append(
                timm_run(Path(script), model, batch, threads, Path(tmp) / "t.json", bench)
            )
            sps, cv = vitbench_run(model, batch, threads, Path(tmp) / "store", bench)
            ours.append(sps)
            cvs.append(cv)
            print(f"round {r + 1}: timm {timm_sps[-1]:8.2f}  vitbench {sps:8.2f}  (CV {cv:.1%})")
    ratio = statistics.median(o / t for o, t in zip(ours, timm_sps, strict=True))
    spread = (max(timm_sps) - min(timm_sps)) / statistics.median(timm_sps)
    print(f"{model} {bench} batch {batch}, {threads} threads, fp32, CPU")
    print(f"median vitbench/timm throughput ratio: {ratio:.3f} ({100 * (ratio - 1):+.1f}%)")
    print(f"timm's own round-to-round spread: {spread:.1%}; vitbench per-call CV median: "
          f"{statistics.median(cvs):.1%}")  # fmt: skip


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0], *(args[1:2]), *(int(a) for a in args[2:4]), *(args[4:5]))
