"""`vitbench report [RESULTS...] --out DIR`: markdown and PNG figures from stored results."""

from __future__ import annotations

from pathlib import Path

import typer

from vitbench import store
from vitbench.cli.app import app
from vitbench.cli.output import info


@app.command("report")
def report_cmd(
    results: list[Path] = typer.Argument(
        None, help="Results stores to read (directories of CSV tables). Default: results."
    ),
    out: Path = typer.Option(
        None, "--out", help="Where to write report.md and figures/. Default: the first store."
    ),
) -> None:
    """Write report.md with the benchmark table, plots and environments; never re-measures."""
    from vitbench.report import build_report

    stores = results or [store.DEFAULT_STORE]
    path = build_report(stores, out or stores[0])
    info(f"report written to {path}")
    typer.echo(str(path))
