"""`vitbench pretrain mae`: parse options, call the pre-training library, print.

torch loads only when the command runs, so other commands start without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from vitbench.cli.app import app
from vitbench.cli.dataclass_options import with_options
from vitbench.cli.output import OutputFormat, emit, info, progress_bar, scaled
from vitbench.cli.store_options import open_for_writing, out_option, print_on_failure, store_option
from vitbench.pretrain.config import MAEConfig

pretrain_app = typer.Typer(help="Self-supervised pre-training.", no_args_is_help=True)
app.add_typer(pretrain_app, name="pretrain")

EPOCH_COLUMNS = ["epoch", "train_loss", "val_loss", "lr", "images_per_s", "epoch_s"]
FORMATTERS = {"images_per_s": scaled(1, ",.0f")}


def _show(rows: list[dict[str, Any]]) -> None:
    emit(rows, OutputFormat.table, columns=EPOCH_COLUMNS, title="epochs", formatters=FORMATTERS)


@pretrain_app.command("mae")
@with_options(MAEConfig, name="cfg")
def mae_cmd(
    cfg: MAEConfig,
    out: Path = out_option(),
    store_url: str = store_option(),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="stdout format."),
) -> None:
    """Pre-train a ViT as a masked autoencoder; each epoch goes to the store, the encoder to
    <out>/runs/<run>/model.safetensors for `vitbench train --checkpoint`."""
    from vitbench.pretrain.run import check_config, pretrain_mae

    cfg, _ = check_config(cfg)
    finished: list[dict[str, Any]] = []
    with (
        open_for_writing(out, store_url) as store,
        print_on_failure(finished, _show),
        progress_bar() as bar,
    ):
        epochs = bar.add_task("epochs", total=cfg.epochs)
        batches = bar.add_task("batches", total=None)

        def on_epoch(rec: dict[str, Any]) -> None:
            finished.append(rec)
            desc = f"epoch {rec['epoch']}/{rec['epochs']} val loss {rec['val_loss']:.4f}"
            bar.update(epochs, completed=rec["epoch"], description=desc)

        result = pretrain_mae(
            cfg,
            store=store,
            on_batch=lambda done, total: bar.update(batches, completed=done, total=total),
            on_epoch=on_epoch,
        )
    info(f"run {result.run_id}: encoder and reconstruction figure in {result.checkpoint.parent}")
    info(f"fine-tune it with: vitbench train --checkpoint {result.checkpoint}")
    emit(
        result.epochs,
        fmt,
        columns=EPOCH_COLUMNS,
        title=f"MAE -> {store.label}",
        formatters=FORMATTERS,
    )
