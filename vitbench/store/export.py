"""Exporting a store's tables as files: CSV, Parquet or JSON lines, one file per table.

Figures (the ``figures`` table's PNG bytes) are written as PNG files under
``<out>/figures/<run_id>/<name>.png``. Existing files are never overwritten: the export checks
every target first and refuses in one line if any exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from vitbench.errors import VitbenchError
from vitbench.store.database import Store
from vitbench.store.schema import TABLES

FORMATS = {"csv": ".csv", "parquet": ".parquet", "json": ".jsonl"}


def check_export(fmt: str, tables: list[str] | None = None) -> None:
    """Refuse an unknown format or table, or Parquet without pyarrow, before anything is read."""
    for name in tables or []:
        if name not in TABLES:
            raise VitbenchError(f"unknown table '{name}'; tables: {', '.join(TABLES)}")
    if fmt not in FORMATS:
        raise VitbenchError(f"unknown export format '{fmt}'; choose from {', '.join(FORMATS)}")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ModuleNotFoundError:
            raise VitbenchError(
                "Parquet export needs pyarrow: pip install 'vitbench[parquet]'"
            ) from None


def _write_frame(df: pd.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)


def _figure_paths(df: pd.DataFrame, out: Path) -> list[tuple[Path, bytes]]:
    return [
        (out / "figures" / str(run) / f"{name}.png", bytes(data))
        for run, name, data in zip(df["run_id"], df["name"], df["data"], strict=True)
    ]


def export_store(
    store: Store, out: str | os.PathLike, fmt: str = "csv", tables: list[str] | None = None
) -> list[Path]:
    """Write the chosen tables (default: every table with rows) to ``out``; return the files."""
    check_export(fmt, tables)
    out = Path(out)
    frames = {name: store.read(name) for name in (tables or TABLES)}
    frames = {name: df for name, df in frames.items() if not df.empty}
    if not frames:
        raise VitbenchError(f"store {store.label} has no rows to export")
    figures = _figure_paths(frames.pop("figures"), out) if "figures" in frames else []
    targets = [out / f"{name}{FORMATS[fmt]}" for name in frames] + [p for p, _ in figures]
    taken = [str(p) for p in targets if p.exists()]
    if taken:
        raise VitbenchError(f"export would overwrite {', '.join(taken)}: choose another directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
        for df, path in zip(frames.values(), targets, strict=False):
            _write_frame(df, path, fmt)
        for path, data in figures:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    except OSError as exc:
        raise VitbenchError(f"cannot write the export to {out}: {exc}") from None
    return targets
