"""A grid of training runs over model hyperparameters and recipe options, resumable, shareable.

Each grid key is either a :class:`TrainConfig` field (``lr``, ``epochs``, ``mixup``, ``model``...)
or a model keyword that timm or the scratch library understands (``embed_dim``, ``patch_size``,
``depth``, ``num_heads``...). Every cell is a full training run (its epochs and final row go to
``train_epochs`` and ``train_runs``) and one row of the ``sweep`` table, keyed by the cell's
config fingerprint. A cell is trained once per store:

- a cell in the ``sweep`` table is taken from it;
- otherwise the cell is claimed (``sweep_cell``, its fingerprint) before it trains, and the
  claim names the run training it. A cell a live process holds is left to that process; a
  cell whose process died is taken over: its run's stored result becomes the sweep row, or its
  checkpoint is resumed, or (neither) it trains afresh.

So sweeps started together on one grid and one store share the cells, and a sweep interrupted
or extended picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from vitbench.environment import environment, new_run_id
from vitbench.errors import VitbenchError
from vitbench.options import parse_value
from vitbench.store import Claim, Holder, Recorder, Store, claim
from vitbench.store.claims import DONE
from vitbench.sweep_effects import effects
from vitbench.train import checkpoint as ckpt
from vitbench.train import distributed, plots
from vitbench.train.config import TrainConfig
from vitbench.train.run import BatchHook, EpochHook, TrainResult, run_dir, train

#: the columns of a sweep row copied from its run's ``train_runs`` row
RUN_COLUMNS = ("params", "gmacs", "best_val_acc", "test_acc", "test_loss", "train_s")
#: columns of a sweep row that a grid key must not shadow
RESULT_COLUMNS = ("cell", "cell_run_id", *RUN_COLUMNS, "config_hash")
#: what happens to a cell, as ``on_cell`` hears it (besides resuming and claimed cells)
STORED, TRAINING = "in the store, skipped", "training"
_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
CONFIG_FIELDS = set(_FIELD_TYPES) - {"model_kwargs"}

#: value types of the model keywords a grid commonly sweeps (others are passed on as parsed)
MODEL_KEY_TYPES: dict[str, type] = {
    "patch_size": int,
    "embed_dim": int,
    "depth": int,
    "num_heads": int,
    "mlp_ratio": float,
    "qkv_bias": bool,
}
_TYPE_NAMES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}

#: the claim kind under which a cell trains (its key: the config fingerprint)
CELL_CLAIM = "sweep_cell"

#: called before each cell with (index from 1, number of cells, label, what happens to it)
CellHook = Callable[[int, int, str, str], None]
#: called with each cell's sweep row once it is stored (or found in the store)
RowHook = Callable[[dict[str, Any]], None]


@dataclass
class SweepResult:
    sweep_id: str
    cells: list[dict[str, Any]]  # one sweep row per cell, trained now or found in the store
    effects: list[dict[str, Any]]  # accuracy by value of each hyperparameter
    keys: list[str]
    plot: Path | None
    claimed: dict[str, str]  # label -> holder, for the cells live processes are training


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["embed_dim=32,64", "depth=2,4"]`` -> ``{"embed_dim": [32, 64], "depth": [2, 4]}``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise VitbenchError(f"grid entry '{item}' is not of the form key=v1,v2,...")
        key, raw = (s.strip() for s in item.split("=", 1))
        values = [parse_value(v.strip()) for v in raw.split(",") if v.strip()]
        if not key or not values:
            raise VitbenchError(f"grid entry '{item}' names no key or no values")
        if key in RESULT_COLUMNS or key == "model_kwargs":
            raise VitbenchError(f"'{key}' cannot be a grid key")
        if key in ("tome", "prune"):
            raise VitbenchError(
                f"'{key}' lists the points every cell is tested at: give it as --{key}, not in "
                f"the grid (train_{key} trains with it)"
            )
        if key in grid:
            raise VitbenchError(f"grid key '{key}' given twice")
        for value in values:
            _check_type(key, value)
        grid[key] = list(dict.fromkeys(values))
    if not grid:
        raise VitbenchError("a sweep needs at least one grid entry key=v1,v2,...")
    return grid


def _wanted_type(key: str) -> tuple[type | None, bool]:
    """The type a grid key's values must have (None: unknown) and whether None is allowed."""
    if key in CONFIG_FIELDS:
        annotation = str(_FIELD_TYPES[key])
        return _TYPE_NAMES.get(annotation.split("|")[0].strip()), "None" in annotation
    return MODEL_KEY_TYPES.get(key), False


def _check_type(key: str, value: Any) -> None:
    """Refuse a grid value of the wrong type, naming the key and the type it wants."""
    want, optional = _wanted_type(key)
    if want is None or (value is None and optional):
        return
    numbers = (int, float) if want is float else (want,)
    if isinstance(value, numbers) and (want is bool or not isinstance(value, bool)):
        return
    raise VitbenchError(f"grid key '{key}' wants {want.__name__} values, not '{value}'")


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


def _sweep_row(
    cfg: TrainConfig, cell: dict[str, Any], label: str, run_id: str, record: dict[str, Any]
) -> dict[str, Any]:
    """A cell's sweep row from the ``train_runs`` record of the run that trained it."""
    return {
        "model": cfg.model,
        "dataset": cfg.dataset,
        **cell,
        "cell": label,
        "cell_run_id": run_id,
        **{k: record[k] for k in RUN_COLUMNS},
        "config_hash": cfg.fingerprint(),
    }


@dataclass
class _Cells:
    """Takes each cell of one sweep from the store, trains it under a claim, or leaves it."""

    store: Store
    sweep_id: str
    stored: dict[str, dict[str, Any]]  # sweep rows by fingerprint, as read when the sweep began
    on_batch: BatchHook | None
    on_epoch: EpochHook | None

    def row(
        self, cfg: TrainConfig, cell: dict[str, Any], label: str, say: Callable[[str], None]
    ) -> dict[str, Any] | Holder:
        """The cell's sweep row, or the live holder of its claim; ``say`` tells what happens."""
        fp = cfg.fingerprint()
        if fp in self.stored:
            say(STORED)
            return {**self.stored[fp], **cell}
        job = claim(self.store, CELL_CLAIM, fp)
        if isinstance(job, Claim):
            with job:
                return self._claimed(cfg, cell, label, job, say)
        if job.status != DONE:
            say(f"claimed by {job.describe()}, skipped")
            return job
        rows = self.store.rows("sweep", config_hash=fp)  # stored since the sweep began
        if not rows:
            raise VitbenchError(f"cell {label} is done in the store but its sweep row is missing")
        say(STORED)
        return {**rows[0], **cell}

    def _claimed(
        self,
        cfg: TrainConfig,
        cell: dict[str, Any],
        label: str,
        job: Claim,
        say: Callable[[str], None],
    ) -> dict[str, Any]:
        """Finish a claimed cell: store the run a dead holder finished, resume it, or train."""
        run_id = job.payload.get("run_id")
        finished = self.store.rows("train_runs", run_id=run_id) if run_id else []
        if finished:
            say(f"run {run_id} finished before its process died; storing it")
            record = finished[0]
        elif run_id and (run_dir(self.store.artifacts, run_id) / ckpt.STATE_FILE).is_file():
            say(f"resuming run {run_id}")
            record = self._train(resume=run_id).record
        else:
            run_id = new_run_id()
            job.update(run_id=run_id)  # before training, so a successor finds the run
            say(TRAINING)
            record = self._train(cfg, run_id=run_id).record
        env = environment(distributed.default_device(cfg.device))
        recorder = Recorder(self.store, env, self.sweep_id)
        return recorder.write("sweep", [_sweep_row(cfg, cell, label, run_id, record)])[0]

    def _train(self, config: TrainConfig | None = None, **how: Any) -> TrainResult:
        return train(
            config, store=self.store, on_batch=self.on_batch, on_epoch=self.on_epoch, **how
        )


def sweep(
    base: TrainConfig,
    grid: dict[str, list[Any]],
    *,
    store: Store,
    on_cell: CellHook | None = None,
    on_row: RowHook | None = None,
    on_batch: BatchHook | None = None,
    on_epoch: EpochHook | None = None,
) -> SweepResult:
    """Train every cell of ``grid`` over ``base`` that ``store`` lacks and no live process holds.

    Returns the cells stored (now or before) with the effect of each grid key over them; the
    cells other processes are training are in ``claimed``. The plot and ``effects.csv`` go to
    ``store.artifacts/runs/<sweep_id>/``.
    """
    if distributed.world_size() > 1:
        raise VitbenchError("a sweep runs in one process; start several sweeps on one store")
    configs = [(cell, cell_config(base, cell)) for cell in cells_of(grid)]
    stored = {str(r["config_hash"]): r for r in store.rows("sweep")}
    sweep_id = new_run_id()
    cells = _Cells(store, sweep_id, stored, on_batch, on_epoch)
    keys = list(grid)
    rows: list[dict[str, Any]] = []
    claimed: dict[str, str] = {}
    for i, (cell, cfg) in enumerate(configs, 1):
        label = ",".join(f"{k}={v}" for k, v in cell.items())

        def say(what: str, i: int = i, label: str = label) -> None:
            if on_cell is not None:
                on_cell(i, len(configs), label, what)

        row = cells.row(cfg, cell, label, say)
        if isinstance(row, Holder):
            claimed[label] = row.describe()
            continue
        rows.append(row)
        if on_row is not None:
            on_row(row)
    table = effects(rows, keys)
    plot = None
    if rows:
        rdir = run_dir(store.artifacts, sweep_id)
        rdir.mkdir(parents=True, exist_ok=True)
        plot = plots.accuracy_vs_gmacs(rows, rdir / "accuracy_vs_gmacs.png", keys)
        pd.DataFrame(table).to_csv(rdir / "effects.csv", index=False)
    return SweepResult(sweep_id, rows, table, keys, plot, claimed)
