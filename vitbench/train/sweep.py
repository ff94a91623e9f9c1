"""A grid of training runs over model hyperparameters and recipe options, resumable.

Each grid key is either a :class:`TrainConfig` field (``lr``, ``epochs``, ``mixup``, ``model``...)
or a model keyword that timm or the scratch library understands (``embed_dim``, ``patch_size``,
``depth``, ``num_heads``...). Every cell is a full training run (its epochs and final row go to
``train_epochs`` and ``train_runs``) and one row of the ``sweep`` table. A cell whose config
fingerprint is already in the store's ``sweep`` table is not trained again, so an interrupted
sweep picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vitbench import store
from vitbench.errors import VitbenchError
from vitbench.train import plots
from vitbench.train.recipe import TrainConfig
from vitbench.train.run import BatchHook, EpochHook, run_dir, train
from vitbench.zoo import parse_kwargs

#: columns of a sweep row that a grid key must not shadow
RESULT_COLUMNS = (
    "cell",
    "cell_run_id",
    "params",
    "gmacs",
    "best_val_acc",
    "test_acc",
    "test_loss",
    "train_s",
    "config_hash",
)
CONFIG_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"model_kwargs"}

#: called before each cell with (index from 1, number of cells, label, skipped)
CellHook = Callable[[int, int, str, bool], None]


@dataclass
class SweepResult:
    sweep_id: str
    cells: list[dict[str, Any]]  # one sweep row per cell, trained now or found in the store
    effects: list[dict[str, Any]]  # accuracy by value of each hyperparameter
    keys: list[str]
    plot: Path | None


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["embed_dim=32,64", "depth=2,4"]`` -> ``{"embed_dim": [32, 64], "depth": [2, 4]}``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise VitbenchError(f"grid entry '{item}' is not of the form key=v1,v2,...")
        key, raw = (s.strip() for s in item.split("=", 1))
        values = [parse_kwargs(f"{key}={v}")[key] for v in raw.split(",") if v.strip()]
        if not key or not values:
            raise VitbenchError(f"grid entry '{item}' names no key or no values")
        if key in RESULT_COLUMNS or key == "model_kwargs":
            raise VitbenchError(f"'{key}' cannot be a grid key")
        if key in grid:
            raise VitbenchError(f"grid key '{key}' given twice")
        grid[key] = list(dict.fromkeys(values))
    if not grid:
        raise VitbenchError("a sweep needs at least one --grid key=v1,v2,...")
    return grid


def cell_config(base: TrainConfig, cell: dict[str, Any]) -> TrainConfig:
    """``base`` with the cell's recipe fields replaced and its model keywords added."""
    fields = {k: v for k, v in cell.items() if k in CONFIG_FIELDS}
    kwargs = {k: v for k, v in cell.items() if k not in CONFIG_FIELDS}
    cfg = dataclasses.replace(base, **fields, model_kwargs={**base.model_kwargs, **kwargs})
    cfg.validate()
    return cfg


def cells_of(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the grid, first key slowest."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grid.values())]


def effects(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Mean, min and max test accuracy (and mean GMACs) for each value of each grid key."""
    out = []
    for key in keys:
        values = list(dict.fromkeys(r[key] for r in rows))
        for value in values:
            accs = [r["test_acc"] for r in rows if r[key] == value]
            gmacs = [r["gmacs"] for r in rows if r[key] == value and r.get("gmacs") is not None]
            out.append(
                {
                    "hyperparameter": key,
                    "value": value,
                    "cells": len(accs),
                    "mean_test_acc": sum(accs) / len(accs),
                    "min_test_acc": min(accs),
                    "max_test_acc": max(accs),
                    "mean_gmacs": sum(gmacs) / len(gmacs) if gmacs else None,
                }
            )
    return out


def _stored_cells(out: Path | None) -> dict[str, dict[str, Any]]:
    """Sweep rows already in the store, by config fingerprint (latest wins)."""
    if out is None:
        return {}
    table = store.read_table(out, "sweep")
    if table.empty or "config_hash" not in table:
        return {}
    rows = table.to_dict("records")
    clean = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in rows
    ]
    return {str(r["config_hash"]): r for r in clean}


def sweep(
    base: TrainConfig,
    grid: dict[str, list[Any]],
    *,
    out: str | Path | None = store.DEFAULT_STORE,
    on_cell: CellHook | None = None,
    on_batch: BatchHook | None = None,
    on_epoch: EpochHook | None = None,
) -> SweepResult:
    """Train every cell of ``grid`` over ``base`` that the store lacks; return all cells."""
    out = Path(out) if out is not None else None
    configs = [(cell, cell_config(base, cell)) for cell in cells_of(grid)]
    done = _stored_cells(out)
    sweep_id = store.new_run_id()
    keys = list(grid)
    rows: list[dict[str, Any]] = []
    for i, (cell, cfg) in enumerate(configs, 1):
        label = ",".join(f"{k}={v}" for k, v in cell.items())
        fp = cfg.fingerprint()
        if on_cell is not None:
            on_cell(i, len(configs), label, fp in done)
        if fp in done:
            rows.append({**done[fp], **cell})
            continue
        result = train(cfg, out=out, on_batch=on_batch, on_epoch=on_epoch)
        rec = result.record
        row = {
            "model": cfg.model,
            "dataset": cfg.dataset,
            **cell,
            "cell": label,
            "cell_run_id": result.run_id,
            "params": rec["params"],
            "gmacs": rec["gmacs"],
            "best_val_acc": rec["best_val_acc"],
            "test_acc": rec["test_acc"],
            "test_loss": rec["test_loss"],
            "train_s": rec["train_s"],
            "config_hash": fp,
        }
        if out is not None:
            env = store.environment(result.device)
            store.append_records(store.stamp_records([row], sweep_id, env), out, "sweep")
        rows.append(row)
    table = effects(rows, keys)
    plot = None
    if out is not None:
        rdir = run_dir(out, sweep_id)
        rdir.mkdir(parents=True, exist_ok=True)
        plot = plots.accuracy_vs_gmacs(rows, rdir / "accuracy_vs_gmacs.png", keys)
        pd.DataFrame(table).to_csv(rdir / "effects.csv", index=False)
    return SweepResult(sweep_id, rows, table, keys, plot)
