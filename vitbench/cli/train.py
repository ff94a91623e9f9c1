"""`vitbench train` and `vitbench sweep`: parse options, call the training library, print.

`train` runs data-parallel under ``torchrun --nproc_per_node N -m vitbench train ...``; only rank 0
prints and writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress

from vitbench import store
from vitbench.cli.app import app
from vitbench.cli.output import OutputFormat, emit, info, progress_bar, scaled
from vitbench.errors import VitbenchError
from vitbench.train.data import DATASETS
from vitbench.train.recipe import DEFAULT_MODEL, DEFAULT_MODEL_KWARGS, TrainConfig
from vitbench.zoo import parse_kwargs, resolve_name

DATASET_HELP = f"Dataset: {', '.join(DATASETS)} (digits and photos are embedded)."
MODEL_HELP = (
    f"Zoo model or alias (default: {DEFAULT_MODEL} shrunk to digits with "
    + ",".join(f"{k}={v}" for k, v in DEFAULT_MODEL_KWARGS.items())
    + ")."
)

RUN_COLUMNS = ["model", "dataset", "epochs", "params", "gmacs", "best_val_acc", "test_acc"]
RUN_COLUMNS += ["test_loss", "train_s"]


_pct = scaled(100, ".2f", "%")
_m = scaled(1e-6, ",.3f")
_g = scaled(1, ".4g")


FORMATTERS = {
    "params": _m,
    "gmacs": _g,
    "best_val_acc": _pct,
    "test_acc": _pct,
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

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.epoch_task = bar.add_task("epochs", total=None)
        self.batch_task = bar.add_task("batches", total=None)

    def restart(self, description: str) -> None:
        self.bar.reset(self.epoch_task, total=None, description=description)

    def on_batch(self, step: int, steps: int) -> None:
        self.bar.update(self.batch_task, completed=step, total=steps)

    def on_epoch(self, rec: dict[str, Any]) -> None:
        desc = f"epoch {rec['epoch']}/{rec['epochs']} val acc {100 * rec['val_acc']:.1f}%"
        self.bar.update(self.epoch_task, completed=rec["epoch"], total=rec["epochs"])
        self.bar.update(self.epoch_task, description=desc)


def _resume_path(resume: str, out: Path) -> Path:
    """A run id under ``<out>/runs``, a run directory, or a ``last.safetensors`` file."""
    path = Path(resume)
    if path.exists():
        return path
    candidate = out / "runs" / resume
    if candidate.is_dir():
        return candidate
    raise VitbenchError(f"nothing to resume at '{resume}' (neither a path nor a run in {out}/runs)")


@app.command("train")
def train_cmd(
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
        help="Continue an interrupted run (its id, directory or last.safetensors) with the "
        "config stored in it; other options are then ignored.",
    ),
    out: Path = typer.Option(store.DEFAULT_STORE, help="Results store directory."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="stdout format."),
) -> None:
    """Train a model; per-epoch and final rows go to the store, the final record to stdout."""
    from vitbench.train import train

    if resume is not None:
        path = _resume_path(resume, out)
        cfg = None
    else:
        path = None
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
    with _progress() as bar:
        bars = _Bars(bar)
        result = train(cfg, out=out, resume=path, on_batch=bars.on_batch, on_epoch=bars.on_epoch)
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
        title=f"train (params in M) -> {out}",
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
    out: Path = typer.Option(store.DEFAULT_STORE, help="Results store directory."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="stdout format."),
) -> None:
    """Train a grid of cells; cells already in the store are skipped. Other train options can
    be swept with a single value, e.g. --grid mixup=0.2."""
    from vitbench.train.sweep import parse_grid, sweep

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
    with _progress() as bar:
        bars = _Bars(bar)

        def on_cell(i: int, n: int, label: str, skipped: bool) -> None:
            verb = "in the store, skipped" if skipped else "training"
            info(f"cell {i}/{n} {label}: {verb}")
            bars.restart(label)

        result = sweep(
            base,
            grid_values,
            out=out,
            on_cell=on_cell,
            on_batch=bars.on_batch,
            on_epoch=bars.on_epoch,
        )
    if not _is_main():
        return
    if result.plot is not None:
        info(f"sweep {result.sweep_id}: plot and effects in {result.plot.parent}")
    cols = ["cell", "params", "gmacs", "best_val_acc", "test_acc", "train_s"]
    emit(result.cells, fmt, columns=cols, title="sweep (params in M)", formatters=FORMATTERS)
    if fmt is OutputFormat.table:
        emit(
            result.effects,
            fmt,
            columns=["hyperparameter", "value", "cells", "mean_test_acc", "min_test_acc"]
            + ["max_test_acc", "mean_gmacs"],
            title="effect of each hyperparameter on test accuracy",
            formatters=FORMATTERS,
        )
