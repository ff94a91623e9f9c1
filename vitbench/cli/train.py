"""`vitbench train` and `vitbench sweep`: parse options, call the training library, print.

`train` runs data-parallel under ``torchrun --nproc_per_node N -m vitbench train ...``; only rank 0
prints and writes. torch loads only when a command runs, so other commands start without it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress

from vitbench.cli.app import app
from vitbench.cli.dataclass_options import with_options
from vitbench.cli.output import OutputFormat, emit, info, progress_bar, scaled
from vitbench.cli.store_options import open_for_writing, out_option, print_on_failure, store_option
from vitbench.errors import VitbenchError
from vitbench.train.config import TrainConfig

RUN_COLUMNS = ["model", "dataset", "epochs", "params", "gmacs", "best_val_acc", "test_acc"]
RUN_COLUMNS += ["test_loss", "train_s"]
#: columns shown when the run used the method: (record field that says so, columns)
METHOD_COLUMNS = (
    ("freeze", ["trainable_params"]),
    ("distillation", ["test_acc_cls", "test_acc_dist", "teacher_test_acc"]),
    ("ema", ["ema_test_acc"]),
    ("img_size_schedule", ["img_size_schedule"]),
    ("miou", ["miou"]),  # segmentation (its test_acc is pixel accuracy)
)
EPOCH_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_s"]
CELL_COLUMNS = ["cell", "params", "gmacs", "best_val_acc", "test_acc", "train_s"]
POINT_COLUMNS = ["reduction", "tome_r", "prune_keep", "tokens_per_layer", "macs", "test_acc"]
POINT_COLUMNS += ["test_loss", "images_per_s"]


_pct = scaled(100, ".2f", "%")
_m = scaled(1e-6, ",.3f")
_g = scaled(1, ".4g")


FORMATTERS = {
    "params": _m,
    "gmacs": _g,
    "best_val_acc": _pct,
    "test_acc": _pct,
    "train_acc": _pct,
    "test_acc_cls": _pct,
    "test_acc_dist": _pct,
    "teacher_test_acc": _pct,
    "ema_test_acc": _pct,
    "miou": _pct,
    "trainable_params": scaled(1, ",.0f"),
    "val_acc": _pct,
    "mean_test_acc": _pct,
    "min_test_acc": _pct,
    "max_test_acc": _pct,
    "mean_gmacs": _g,
    "macs": _m,
    "images_per_s": scaled(1, ",.0f"),
}


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _progress() -> Progress:
    return progress_bar(disable=not _is_main())


class _Bars:
    """Epoch and batch bars fed by the library's hooks."""

    def __init__(self, bar: Progress, epochs: list[dict[str, Any]]) -> None:
        self.bar = bar
        self.epochs = epochs  # the epoch rows finished, in the store
        self.epoch_task = bar.add_task("epochs", total=None)
        self.batch_task = bar.add_task("batches", total=None)

    def restart(self, description: str) -> None:
        self.bar.reset(self.epoch_task, total=None, description=description)

    def on_batch(self, step: int, steps: int) -> None:
        self.bar.update(self.batch_task, completed=step, total=steps)

    def on_epoch(self, rec: dict[str, Any]) -> None:
        self.epochs.append(rec)
        what, score = (
            ("val mIoU", rec["val_miou"]) if "val_miou" in rec else ("val acc", rec["val_acc"])
        )
        desc = f"epoch {rec['epoch']}/{rec['epochs']} {what} {100 * score:.1f}%"
        self.bar.update(self.epoch_task, completed=rec["epoch"], total=rec["epochs"])
        self.bar.update(self.epoch_task, description=desc)


def _show_epochs(rows: Sequence[dict[str, Any]], run: str) -> None:
    emit(rows, OutputFormat.table, columns=EPOCH_COLUMNS, title="epochs", formatters=FORMATTERS)
    info(f"continue the run with --resume {run}")


def _check_inputs(cfg: TrainConfig) -> None:
    """Check the data, weights and teacher a config reads before the store is opened."""
    from vitbench.train.inputs import check_inputs

    check_inputs(cfg)


def _run_columns(rec: dict[str, Any]) -> list[str]:
    """The headline columns, and those of the methods the run used."""
    extra = [c for field, columns in METHOD_COLUMNS if rec.get(field) for c in columns]
    return RUN_COLUMNS + extra


def _announce(run_id: str) -> None:
    info(f"run {run_id} (if interrupted, continue it with --resume {run_id})")


def _show_cells(rows: Sequence[dict[str, Any]]) -> None:
    emit(rows, OutputFormat.table, columns=CELL_COLUMNS, title="cells", formatters=FORMATTERS)


#: the options a resumed run reads; every other one comes from the run's stored config
RESUME_OPTIONS = ("resume", "out", "store_url", "fmt")


def _given(ctx: typer.Context) -> list[str]:
    """The options given on the command line or by the environment, by their long flag."""
    given = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            given.append(param.name)
    return given


def _refuse_ignored_by_resume(ctx: typer.Context) -> None:
    """--resume trains with the run's stored config: refuse options it would ignore."""
    flags = {p.name: max(p.opts, key=len) for p in ctx.command.params}
    ignored = [flags[name] for name in _given(ctx) if name not in RESUME_OPTIONS]
    if ignored:
        raise VitbenchError(
            f"--resume continues with the run's stored config; it would ignore {', '.join(ignored)}"
        )


@app.command("train")
@with_options(TrainConfig, name="cfg")
def train_cmd(
    ctx: typer.Context,
    cfg: TrainConfig,
    resume: str = typer.Option(
        None,
        help="Continue an interrupted run (its id under <out>/runs, its directory or its "
        "last.safetensors) with the config stored in it; only --out, --store and --format "
        "may be given with it.",
    ),
    out: Path = out_option(),
    store_url: str = store_option(),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="stdout format."),
) -> None:
    """Train a model; each epoch and the final row go to the store, the final record to stdout."""
    from vitbench.environment import new_run_id
    from vitbench.train import train
    from vitbench.train.run import resumable

    if resume is not None:
        _refuse_ignored_by_resume(ctx)
        resumable(resume, out)
        cfg = None
    else:
        cfg.validate()
        cfg = cfg.resolved()
        _check_inputs(cfg)
    run_id = None if resume else new_run_id()
    finished: list[dict[str, Any]] = []
    with (
        open_for_writing(out, store_url) as store,
        print_on_failure(finished, lambda rows: _show_epochs(rows, resume or run_id)),
        _progress() as bar,
    ):
        bars = _Bars(bar, finished)
        result = train(
            cfg,
            store=store,
            resume=resume,
            run_id=run_id,
            on_batch=bars.on_batch,
            on_epoch=bars.on_epoch,
            on_start=_announce,
        )
    if not _is_main():
        return
    rec = result.record
    info(f"run {result.run_id}: checkpoints and plots in {result.run_dir}")
    if rec["most_confused"]:
        pairs = ", ".join(f"{p['true']}→{p['pred']} ({p['count']})" for p in rec["most_confused"])
        info(f"most confused (true→predicted): {pairs}")
    emit(
        [{"run_id": result.run_id, **rec}],
        fmt,
        columns=_run_columns(rec),
        title=f"train (params in M) -> {store.label}",
        formatters=FORMATTERS,
    )
    if result.points and fmt is OutputFormat.table:
        emit(
            result.points,
            fmt,
            columns=POINT_COLUMNS,
            title="token reduction: the trained model on the test split (MACs in M per image)",
            formatters=FORMATTERS,
        )


@app.command("sweep")
@with_options(TrainConfig, name="base")
def sweep_cmd(
    base: TrainConfig,
    grid: list[str] = typer.Option(
        ...,
        "--grid",
        "-g",
        help="KEY=V1,V2,...: a model keyword (embed_dim, patch_size, depth, num_heads...) or a "
        "train option (lr, epochs, mixup, model...). Repeat for more keys.",
    ),
    out: Path = out_option(),
    store_url: str = store_option(),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="stdout format."),
) -> None:
    """Train a grid of cells; cells already in the store, or that another sweep is training,
    are skipped. Other train options can be swept with a single value, e.g. --grid mixup=0.2."""
    from vitbench.train.sweep import cell_config, cells_of, parse_grid, sweep
    from vitbench.zoo import resolve_name

    grid_values = parse_grid(grid)
    base.validate()
    base = base.resolved()
    if "model" in grid_values:
        grid_values["model"] = [resolve_name(str(m)) for m in grid_values["model"]]
    for cell in cells_of(grid_values):
        _check_inputs(cell_config(base, cell))  # every cell is valid before the store opens
    cells: list[dict[str, Any]] = []
    with (
        open_for_writing(out, store_url) as store,
        print_on_failure(cells, _show_cells),
        _progress() as bar,
    ):
        bars = _Bars(bar, [])

        def on_cell(i: int, n: int, label: str, what: str) -> None:
            info(f"cell {i}/{n} {label}: {what}")
            bars.restart(label)

        result = sweep(
            base,
            grid_values,
            store=store,
            on_cell=on_cell,
            on_row=cells.append,
            on_batch=bars.on_batch,
            on_epoch=bars.on_epoch,
        )
    if result.claimed:
        info(f"{len(result.claimed)} cell(s) left to the sweeps training them")
    if result.plot is not None:
        info(f"sweep {result.sweep_id}: plot and effects in {result.plot.parent}")
    emit(
        result.cells, fmt, columns=CELL_COLUMNS, title="sweep (params in M)", formatters=FORMATTERS
    )
    if fmt is OutputFormat.table:
        emit(
            result.effects,
            fmt,
            columns=["hyperparameter", "value", "cells", "mean_test_acc", "min_test_acc"]
            + ["max_test_acc", "mean_gmacs"],
            title="effect of each hyperparameter on test accuracy",
            formatters=FORMATTERS,
        )
