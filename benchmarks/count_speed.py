"""Benchmark: how long counting takes, end to end, as a user runs it.

1. `vitbench profile --metrics params,flops` of the five-row benchmark table (target: < 10 s).
2. The ViT-22B-shaped count (`vit_base_patch16_224` with embed_dim=6144, depth=48,
   num_heads=48; 21.8B parameters, 88 GB of float32 weights) (target: < 10 s, < 4 GB).

Each command runs in a fresh process (imports included, as a user sees it), several times;
the median wall time and the child's peak resident memory (ru_maxrss) are printed. Run with
`nox -s bench` or `python benchmarks/count_speed.py`.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = {
    "five-row table, params+flops": ["profile", "--metrics", "params,flops"],
    "ViT-22B shape, params+flops": [
        "profile",
        "vit_base_patch16_224",
        "--metrics",
        "params,flops",
        "--model-kwargs",
        "embed_dim=6144,depth=48,num_heads=48",
    ],
}


def run(args: list[str], repeats: int) -> tuple[float, float, float]:
    """(median s, max s, peak RSS GiB) of `python -m vitbench ARGS` in fresh processes."""
    times = []
    peak = 0.0
    with tempfile.TemporaryDirectory() as out:
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "vitbench", *args, "--out", out, "--format", "csv"],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            times.append(time.perf_counter() - start)
            # ru_maxrss of children is the largest any child reached, in KiB on Linux
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return statistics.median(times), max(times), peak


def main(repeats: int = 3) -> None:
    print(f"{'command':32s} {'median s':>9s} {'max s':>7s} {'peak RSS GiB':>13s}")
    for label, args in COMMANDS.items():
        med, worst, rss = run(args, repeats)
        print(f"{label:32s} {med:9.2f} {worst:7.2f} {rss:13.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
