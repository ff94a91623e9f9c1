"""Published figures kept as data: timm's benchmark and ImageNet tables and the papers.

The table lives in ``vitbench/data/published.csv`` (linked from ``results/reference/``), one
row per model and source, with the source named in each row. Units: params in millions, GMACs
(multiply-adds, which papers and timm call FLOPs or GMACs), throughput in samples per second.
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from typing import Any

import pandas as pd

#: the seed benchmark table of the measurement-core issue, in timm names
BENCHMARK_TABLE = (
    "vit_base_patch16_224",
    "vit_large_patch16_224",
    "swin_tiny_patch4_window7_224",
    "swin_base_patch4_window7_224",
    "deit_base_patch16_224",
)


@lru_cache(maxsize=1)
def published_table() -> pd.DataFrame:
    """All published rows, with a ``source`` column."""
    with files("vitbench.data").joinpath("published.csv").open() as fh:
        return pd.read_csv(fh)


def published_for(model: str, img_size: int | None = None, source: str = "timm") -> dict | None:
    """The first published row for a model (from timm's tables by default), or None."""
    df = published_table()
    hits = df[(df["model"] == model) & df["source"].str.startswith(source)]
    if img_size is not None:
        hits = hits[hits["img_size"] == img_size]
    if hits.empty:
        return None
    row: dict[str, Any] = hits.iloc[0].to_dict()
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}
