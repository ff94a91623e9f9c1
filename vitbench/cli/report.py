"""`vitbench report [STORES...] --out DIR`: markdown and PNG figures from stored results."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from vitbench.cli.app import app
from vitbench.cli.output import info


@app.command("report")
def report_cmd(
    stores: list[str] = typer.Argument(
        None,
        help="Stores to read: results directories (holding vitbench.db), SQLite files or "
        "database URLs. Default: $VITBENCH_STORE, else results.",
        show_default=False,
    ),
    out: Path = typer.Option(
        None,
        "--out",
        help="Where to write report.md and figures/. Default: the first store's directory "
        "(results for a database server).",
    ),
) -> None:
    """Write report.md with the benchmark table, plots and environments; never re-measures."""
    from vitbench.report import build_report
    from vitbench.store import DEFAULT_STORE, STORE_ENV

    path = build_report(stores or [os.environ.get(STORE_ENV) or DEFAULT_STORE], out)
    info(f"report written to {path}")
    typer.echo(str(path))
