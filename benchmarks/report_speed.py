"""Benchmark: `vitbench report results/example`, the whole command in a fresh process.

Imports included, as a user runs it; the report goes to a temporary directory so the kept
example is not touched. Target: under 2 s on the 2-core development machine.

Run with `nox -s bench` or `python benchmarks/report_speed.py [--runs 5] [STORE]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 2.0
EXAMPLE = Path(__file__).resolve().parents[1] / "results" / "example"


def time_report(store: Path, out: Path) -> float:
    """Wall seconds of one `vitbench report STORE --out OUT` in a new interpreter."""
    cmd = [sys.executable, "-m", "vitbench", "report", str(store), "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", nargs="?", type=Path, default=EXAMPLE)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        times = [time_report(args.store, Path(tmp) / f"r{i}") for i in range(args.runs)]
    median = statistics.median(times)
    print("| command | runs | median | worst | load average |\n|---|---|---|---|---|")
    print(
        f"| `vitbench report {args.store.name}` | {args.runs} | {median:.2f} s | "
        f"{max(times):.2f} s | {os.getloadavg()[0]:.1f} |"
    )
    ok = median < TARGET_S
    print(f"target: median under {TARGET_S:.0f} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
