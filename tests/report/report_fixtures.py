"""Small stored results in the stores' schemas, written as the commands write them, and
readers for the report's markdown."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from vitbench import store


def env(device: str = "Test CPU 2 cores", threads: int = 2, torch: str = "2.14.1") -> dict:
    """``env_*`` columns as :func:`vitbench.store.environment` writes them."""
    return {
        "env_vitbench": "0.1.0",
        "env_torch": torch,
        "env_timm": "1.0.31",
        "env_python": "3.11.9",
        "env_platform": "Linux-6.1",
        "env_host": "box",
        "env_device_type": "cpu",
        "env_device": device,
        "env_threads": threads,
        "env_cpu_count": 2,
    }


def profile_rows() -> list[dict]:
    """ViT-B/16 and Swin-T at their own size (two batch sizes each) and an image-size sweep."""
    rows = []
    for model, params, macs, tput in (
        ("vit_base_patch16_224", 86_567_656, 17_582_740_224, (10.0, 12.5)),
        ("swin_tiny_patch4_window7_224", 28_288_354, 4_510_000_000, (30.0, 41.0)),
    ):
        for batch, sps in zip((1, 8), tput, strict=True):
            rows.append(
                {
                    "model": model,
                    "img_size": 224,
                    "batch_size": batch,
                    "tokens": 197,
                    "params": params,
                    "macs": macs,
                    "macs_batch": macs * batch,
                    "latency_median_ms": 1000 * batch / sps,
                    "throughput_sps": sps,
                    "achieved_tflops": 2 * macs * sps / 1e12,
                    "peak_tflops": 0.5,
                    "peak_source": "measured float32 matmul on this CPU",
                    "mfu": 2 * macs * sps / 1e12 / 0.5,
                    "memory_peak_bytes": 400 * 2**20 * batch,
                    "status": "ok",
                    "device": "Test CPU 2 cores",
                    "device_type": "cpu",
                    "precision": "fp32",
                    "threads": 2,
                }
            )
    for img in (32, 64, 128):
        tokens = (img // 16) ** 2 + 1
        rows.append(
            {
                "model": "vit_small_patch16_224",
                "img_size": img,
                "batch_size": 1,
                "tokens": tokens,
                "params": 22_000_000,
                "macs": int(4.6e9 * tokens / 197),
                "latency_median_ms": 0.2 * tokens**1.1,
                "throughput_sps": 1000 / (0.2 * tokens**1.1),
                "memory_peak_bytes": 1000 * tokens * 2**10,
                "status": "ok",
                "precision": "fp32",
            }
        )
    return rows


def fit_rows() -> list[dict]:
    return [
        {"model": "vit_small_patch16_224", "batch_size": 1, "metric": m, "exponent": k, "r2": 0.99}
        for m, k in (("macs", 1.0), ("latency_median_ms", 1.1), ("memory_peak_bytes", 1.0))
    ]


def write(rows: list[dict], path: Path, table: str, run_id: str, environment: dict) -> None:
    store.append_records(store.stamp_records(rows, run_id, environment), path, table)


def write_profile_store(path: Path) -> Path:
    write(profile_rows(), path, "profile", "run-a", env())
    write(fit_rows(), path, "profile_fit", "run-a", env())
    return path


def assert_close(text: str, value: float, rel: float = 1e-3) -> None:
    """``text`` (a formatted cell) reads back as ``value``."""
    number = float(text.replace(",", "").rstrip("%x"))
    assert math.isclose(number, value, rel_tol=rel), (text, value)


def markdown_tables(text: str) -> list[pd.DataFrame]:
    """Every pipe table of a markdown text, parsed; a ragged row fails the test."""
    tables, block = [], []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block:
            cells = [[c.strip() for c in row.strip().strip("|").split(" | ")] for row in block]
            header, rule, body = cells[0], block[1], cells[2:]
            assert set(rule) <= {"|", "-", ":"}, rule
            assert all(len(row) == len(header) for row in body), block
            tables.append(pd.DataFrame(body, columns=header))
            block = []
    return tables


def image_links(text: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
