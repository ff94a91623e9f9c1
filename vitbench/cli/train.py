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
from vitbench.cli.output import OutputFormat, emit, info, progress_bar, scaled
from vitbench.cli.store_options import open_for_writing, out_option, print_on_failure, store_option
from vitbench.errors import VitbenchError
from vitbench.train.defaults import DATASETS, DEFAULT_MODEL, DEFAULT_MODEL_KWARGS

DATASET_HELP = f"Dataset: {', '.join(DATASETS)} (digits and photos are embedded)."
MODEL_HELP = (
    f"Zoo model or alias (default: {DEFAULT_MODEL} shrunk to digits with "
    + ",".join(f"{k}={v}" for k, v in DEFAULT_MODEL_KWARGS.items())
    + ")."
)

RUN_COLUMNS = ["model", "dataset", "epochs", "params", "gmacs", "best_val_acc", "test_acc"]
RUN_COLUMNS += ["test_loss", "train_s"]
EPOCH_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_s"]
CELL_COLUMNS = ["cell", "params", "gmacs", "best_val_acc", "test_acc", "train_s"]


_pct = scaled(100, ".2f", "%")
_m = scaled(1e-6, ",.3f")
_g = scaled(1, ".4g")


FORMATTERS = {
    "params": _m,
    "gmacs": _g,
    "best_val_acc": _pct,
    "test_acc": _pct,
    "train_acc": _pct,
    "val_acc": _pct,
    "mean_test_acc": _pct,
    "min_test_acc": _pct,
    "max_test_acc": _pct,
    "mean_gmacs": _g,
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
        desc = f"epoch {rec['epoch']}/{rec['epochs']} val acc {100 * rec['val_acc']:.1f}%"
        self.bar.update(self.epoch_task, completed=rec["epoch"], total=rec["epochs"])
        self.bar.update(self.epoch_task, description=desc)


def _show_epochs(rows: Sequence[dict[str, Any]], run: str) -> None:
    emit(rows, OutputFormat.table, columns=EPOCH_COLUMNS, title="epochs", formatters=FORMATTERS)
    info(f"continue the run with --resume {run}")


def _check_data(cfg: Any) -> None:  # a TrainConfig (torch loads only when a command runs)
    """Check the data a config reads before the store is opened."""
    from vitbench.train.data import check_data

    check_data(
        cfg.dataset,
        data_dir=cfg.data_dir,
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        subset=cfg.subset,
    )


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
def train_cmd(
    ctx: typer.Context,
    dataset: str = typer.Option("digits", "--dataset", "-d", help=DATASET_HELP),
    data_dir: Path = typer.Option(None, help="Folder holding a local dataset (never downloaded)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
    model_kwargs: str = typer.Option(
        None, help="Model keyword overrides, e.g. 'depth=6,embed_dim=96'."
    ),
    img_size: int = typer.Option(None, help="Image side the model sees (default: the data's)."),
    in_chans: int = typer.Option(None, help="Channels the model sees, 1 or 3 (default: data's)."),
    pretrained: bool = typer.Option(False, help="Start from timm's pretrained weights."),
    checkpoint: Path = typer.Option(None, help="Start from these weights (safetensors/torch)."),
    epochs: int = typer.Option(50, help="Epochs."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Global batch size."),
    lr: float = typer.Option(1e-3, help="Peak learning rate (AdamW)."),
    min_lr: float = typer.Option(1e-5, help="Learning rate at the end of the cosine."),
    weight_decay: float = typer.Option(0.05, help="AdamW weight decay (not on biases/norms)."),
    warmup: float = typer.Option(0.1, help="Share of the updates spent in linear warm-up."),
    label_smoothing: float = typer.Option(0.1, help="Label smoothing."),
    mixup: float = typer.Option(0.0, help="Mixup alpha (0: off)."),
    cutmix: float = typer.Option(0.0, help="CutMix alpha (0: off)."),
    clip_grad: float = typer.Option(1.0, help="Max gradient norm (0: no clipping)."),
    dropout: float = typer.Option(None, help="Dropout rate (the model's drop_rate)."),
    drop_path: float = typer.Option(None, help="Stochastic depth rate (drop_path_rate)."),
    layer_scale: float = typer.Option(None, help="LayerScale initial value (init_values)."),
    val_fraction: float = typer.Option(0.1, help="Share of images held out for validation."),
    test_fraction: float = typer.Option(0.2, help="Test share, for data with no test split."),
    subset: int = typer.Option(None, help="At most this many images in each split."),
    seed: int = typer.Option(0, help="Seed for splits, initialisation and shuffling."),
    device: str = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
    precision: str = typer.Option("fp32", help="fp32, bf16 or fp16 (fp16 on CUDA only)."),
    grad_checkpointing: bool = typer.Option(False, help="Recompute activations (timm models)."),
    workers: int = typer.Option(0, help="Data loader worker processes."),
    threads: int = typer.Option(None, help="CPU threads (default: torch's; recorded)."),
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
    from vitbench.store import new_run_id
    from vitbench.train import TrainConfig, train
    from vitbench.train.run import resumable
    from vitbench.zoo import parse_kwargs, resolve_name

    cfg = None
    if resume is not None:
        _refuse_ignored_by_resume(ctx)
        resumable(resume, out)
    else:
        cfg = TrainConfig(
            dataset=dataset,
            data_dir=str(data_dir) if data_dir else None,
            img_size=img_size,
            in_chans=in_chans,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            subset=subset,
            model=resolve_name(model),
            model_kwargs=parse_kwargs(model_kwargs),
            pretrained=pretrained,
            checkpoint=str(checkpoint) if checkpoint else None,
            dropout=dropout,
            drop_path=drop_path,
            layer_scale=layer_scale,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            min_lr=min_lr,
            weight_decay=weight_decay,
            warmup=warmup,
            label_smoothing=label_smoothing,
            mixup=mixup,
            cutmix=cutmix,
            clip_grad=clip_grad or None,
            seed=seed,
            device=device,
            precision=precision,
            grad_checkpointing=grad_checkpointing,
            workers=workers,
            threads=threads,
        )
        cfg.validate()
        _check_data(cfg)
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
        columns=RUN_COLUMNS,
        title=f"train (params in M) -> {store.label}",
        formatters=FORMATTERS,
    )


@app.command("sweep")
def sweep_cmd(
    grid: list[str] = typer.Option(
        ...,
        "--grid",
        "-g",
        help="KEY=V1,V2,...: a model keyword (embed_dim, patch_size, depth, num_heads...) or a "
        "train option (lr, epochs, mixup, model...). Repeat for more keys.",
    ),
    dataset: str = typer.Option("digits", "--dataset", "-d", help=DATASET_HELP),
    data_dir: Path = typer.Option(None, help="Folder holding a local dataset (never downloaded)."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help=MODEL_HELP),
    model_kwargs: str = typer.Option(None, help="Model keyword overrides for every cell."),
    img_size: int = typer.Option(None, help="Image side the model sees (default: the data's)."),
    in_chans: int = typer.Option(None, help="Channels the model sees, 1 or 3 (default: data's)."),
    epochs: int = typer.Option(50, help="Epochs per cell."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Global batch size."),
    lr: float = typer.Option(1e-3, help="Peak learning rate (AdamW)."),
    subset: int = typer.Option(None, help="At most this many images in each split."),
    seed: int = typer.Option(0, help="Seed for splits, initialisation and shuffling."),
    device: str = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
    precision: str = typer.Option("fp32", help="fp32, bf16 or fp16 (fp16 on CUDA only)."),
    workers: int = typer.Option(0, help="Data loader worker processes."),
    threads: int = typer.Option(None, help="CPU threads (default: torch's; recorded)."),
    out: Path = out_option(),
    store_url: str = store_option(),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="stdout format."),
) -> None:
    """Train a grid of cells; cells already in the store, or that another sweep is training,
    are skipped. Other train options can be swept with a single value, e.g. --grid mixup=0.2."""
    from vitbench.train import TrainConfig
    from vitbench.train.sweep import cell_config, cells_of, parse_grid, sweep
    from vitbench.zoo import parse_kwargs, resolve_name

    grid_values = parse_grid(grid)
    if "model" in grid_values:
        grid_values["model"] = [resolve_name(str(m)) for m in grid_values["model"]]
    base = TrainConfig(
        dataset=dataset,
        data_dir=str(data_dir) if data_dir else None,
        img_size=img_size,
        in_chans=in_chans,
        subset=subset,
        model=resolve_name(model),
        model_kwargs=parse_kwargs(model_kwargs),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        device=device,
        precision=precision,
        workers=workers,
        threads=threads,
    )
    base.validate()
    _check_data(base)
    for cell in cells_of(grid_values):
        cell_config(base, cell)  # every cell is valid before the store is opened
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
