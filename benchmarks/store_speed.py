"""Benchmark: appending one record to a large results store, as a finished unit of work does.

Builds a store of 300,000 profile rows with the ~40 columns vitbench's profile rows carry
(bulk, through ``Store.write`` in batches), then appends ONE record through
``Recorder(...).write`` in fresh processes, as each `vitbench` command does: the time of
``open_store`` + write, and the extra resident memory it takes (``VmRSS`` from
/proc/self/status, before and after). Imports (vitbench.store, SQLAlchemy, the database driver)
come before the clock and are shown on their own. Target: < 50 ms and < 100 MB.

Run with `nox -s bench` or `python benchmarks/store_speed.py [--url postgresql://...]`; a
PostgreSQL URL should name an empty database.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_MS, TARGET_MB = 50.0, 100.0
MODELS = ("vit_tiny_patch16_224", "vit_small_patch16_224", "vit_base_patch16_224", "vit_large")
ENV = {
    "env_vitbench": "0.2.0",
    "env_torch": "2.4.1+cpu",
    "env_timm": "1.0.9",
    "env_python": "3.11.9",
    "env_platform": "Linux-6.1-x86_64",
    "env_host": "bench-host",
    "env_device_type": "cpu",
    "env_device": "Intel(R) Xeon(R) CPU @ 2.20GHz",
    "env_threads": 2,
    "env_cpu_count": 2,
    "env_cuda": "",
    "env_cudnn": "",
    "env_tf32_matmul": "",
    "env_cudnn_benchmark": "",
}

#: one append in a fresh process: RSS and clock around open_store + Recorder.write; the
#: database driver, which SQLAlchemy imports on first use, is timed on its own before
CHILD = """
import json, sys, time
start = time.perf_counter()
import sqlalchemy as sa
from vitbench.store import Recorder, new_run_id, open_store
sa.create_engine(sys.argv[1]).dispose()  # imports the dialect and driver, connects nothing
import_ms = (time.perf_counter() - start) * 1000

def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

url, env, record = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
before = rss_mb()
start = time.perf_counter()
with open_store(url) as st:
    Recorder(st, env=env, run_id=new_run_id()).write("profile", [record])
ms = (time.perf_counter() - start) * 1000
print(json.dumps({"ms": ms, "extra_mb": rss_mb() - before, "import_ms": import_ms}))
"""


def profile_row(i: int) -> dict[str, Any]:
    """A profile row shaped like vitbench's: model, shape, counts, latency statistics."""
    img = (96, 128, 160, 192, 224, 256, 320, 384)[i % 8]
    tokens = (img // 16) ** 2 + 1
    mean = 1.0 + (i % 997) * 0.013
    return {
        "model": MODELS[i % len(MODELS)],
        "img_size": img,
        "patch_size": 16,
        "seq_len": tokens,
        "tokens": tokens,
        "batch_size": 1 << (i % 6),
        "point": i,
        "params": 86_567_656 + i % 7,
        "macs": 17_583_000_000 + i,
        "flops": 35_166_000_000 + 2 * i,
        "dtype": "float32",
        "device": "cpu",
        "latency_ms_mean": mean,
        "latency_ms_median": mean * 0.99,
        "latency_ms_std": mean * 0.05,
        "latency_ms_min": mean * 0.9,
        "latency_ms_max": mean * 1.3,
        "latency_ms_p05": mean * 0.92,
        "latency_ms_p95": mean * 1.2,
        "repeats": 30,
        "throughput": 1000.0 / mean,
        "peak_memory_mb": 300.0 + i % 100,
        "compiled": i % 2 == 0,
    }


def build(url: str, rows: int, batch: int) -> float:
    """Fill the store with ``rows`` stamped profile rows; return the seconds it took."""
    from vitbench.store import Recorder, open_store

    start = time.perf_counter()
    with open_store(url) as st:
        for first in range(0, rows, batch):
            rec = Recorder(st, env=ENV, run_id=f"bulk-{first // batch:05d}")
            rec.write("profile", [profile_row(i) for i in range(first, min(first + batch, rows))])
        assert st.counts()["profile"] == rows, "the store was not empty"
    return time.perf_counter() - start


def append_once(url: str, i: int) -> dict[str, float]:
    """One append in a fresh Python process; its timing and memory."""
    args = [sys.executable, "-c", CHILD, url, json.dumps(ENV), json.dumps(profile_row(i))]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def measure(url: str, rows: int, batch: int, appends: int) -> dict[str, float]:
    built = build(url, rows, batch)
    runs = [append_once(url, rows + i) for i in range(appends)]
    ms = [r["ms"] for r in runs]
    extra = [r["extra_mb"] for r in runs]
    return {
        "build_s": built,
        "median_ms": statistics.median(ms),
        "max_ms": max(ms),
        "median_mb": statistics.median(extra),
        "max_mb": max(extra),
        "import_ms": statistics.median(r["import_ms"] for r in runs),
    }


def table(results: dict[str, dict[str, float]], rows: int) -> str:
    """The figures as a small markdown table."""
    lines = [
        f"Append one record to a store of {rows:,} profile rows "
        f"(target: median < {TARGET_MS:.0f} ms, < {TARGET_MB:.0f} MB)",
        "",
        "| store | build s | imports ms | median ms | max ms | extra MB (median) | "
        "extra MB (max) | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in results.items():
        ok = r["median_ms"] < TARGET_MS and r["max_mb"] < TARGET_MB
        lines.append(
            f"| {name} | {r['build_s']:.1f} | {r['import_ms']:.0f} | {r['median_ms']:.1f} | "
            f"{r['max_ms']:.1f} | "
            f"{r['median_mb']:.1f} | {r['max_mb']:.1f} | {'met' if ok else 'MISSED'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--appends", type=int, default=20)
    parser.add_argument("--url", help="also measure this (empty) PostgreSQL database")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'vitbench.db'}"
        results["SQLite"] = measure(sqlite_url, args.rows, args.batch, args.appends)
    if args.url:
        results["PostgreSQL"] = measure(args.url, args.rows, args.batch, args.appends)
    print(table(results, args.rows))
    if not all(r["median_ms"] < TARGET_MS and r["max_mb"] < TARGET_MB for r in results.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
