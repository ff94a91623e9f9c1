"""Published figures kept as data: timm's benchmark and ImageNet tables and the papers.

The table lives in ``vitbench/data/published.csv`` (linked from ``results/reference/``), one
row per model and source, with the source named in each row. Units: params in millions, GMACs
(multiply-adds, which papers and timm call FLOPs or GMACs), throughput in samples per second
(``throughput_sps`` for inference, ``train_throughput_sps`` for training steps), each with the
setting it was measured in.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Any

import pandas as pd

from vitbench.missing import is_missing

#: the seed benchmark table of the measurement-core issue, in timm names
BENCHMARK_TABLE = (
    "vit_base_patch16_224",
    "vit_large_patch16_224",
    "swin_tiny_patch4_window7_224",
    "swin_base_patch4_window7_224",
    "deit_base_patch16_224",
)
#: how timm's sources start: its inference benchmark (with ImageNet accuracy), its training one
TIMM_INFER = "timm results/benchmark-infer"
TIMM_TRAIN = "timm results/benchmark-train"


@lru_cache(maxsize=1)
def published_table() -> pd.DataFrame:
    """All published rows, with a ``source`` column."""
    with files("vitbench.data").joinpath("published.csv").open() as fh:
        return pd.read_csv(fh)


@lru_cache(maxsize=1)
def _by_model() -> dict[str, list[dict[str, Any]]]:
    """The published rows as records (None where a cell is empty), by model."""
    by_model: dict[str, list[dict[str, Any]]] = {}
    for rec in published_table().to_dict("records"):
        row = {k: None if is_missing(v) else v for k, v in rec.items()}
        by_model.setdefault(rec["model"], []).append(row)
    return by_model


def published_rows(model: str, img_size: object = None, source: str = "") -> list[dict[str, Any]]:
    """Every published row for a model whose source starts with ``source`` (by default any
    source), at ``img_size`` unless that is missing, in the table's order."""
    rows = [r for r in _by_model().get(model, []) if r["source"].startswith(source)]
    if not is_missing(img_size):
        rows = [r for r in rows if r["img_size"] == int(img_size)]
    return [dict(r) for r in rows]


def published_for(model: str, img_size: object = None, source: str = TIMM_INFER) -> dict | None:
    """The first published row for a model (timm's inference benchmark by default), or None."""
    rows = published_rows(model, img_size, source)
    return rows[0] if rows else None
