"""`vitbench export` and `vitbench import`: files out of a store, and 0.1 CSV stores into one."""

from __future__ import annotations

from pathlib import Path

import typer

from vitbench.cli.app import app
from vitbench.cli.output import OutputFormat, emit, info
from vitbench.cli.store_options import open_for_writing, store_option


@app.command("export")
def export_cmd(
    store: str = typer.Argument(
        "results", help="The store: a results directory, an SQLite file or a database URL."
    ),
    table: list[str] = typer.Option(
        None, "--table", "-t", help="Tables to export (repeatable). Default: all with rows."
    ),
    fmt: str = typer.Option("csv", "--format", help="csv, parquet or json (JSON lines)."),
    out: Path = typer.Option(..., "--out", help="Directory for the files (must not hold them)."),
) -> None:
    """Write a store's tables as files, one per table; figures as PNG files."""
    from vitbench.store import open_store
    from vitbench.store.export import check_export, export_store

    check_export(fmt, table or None)
    with open_store(store, create=False) as st:
        paths = export_store(st, out, fmt, table or None)
    info(f"{len(paths)} file(s) written to {out}")
    for path in paths:
        typer.echo(str(path))


@app.command("import")
def import_cmd(
    directory: Path = typer.Argument(..., help="A results directory of vitbench 0.1 CSV tables."),
    url: str = store_option(),
) -> None:
    """Import a CSV store of vitbench 0.1 into a database (DIR/vitbench.db by default).

    Every file is checked before anything is written; importing twice stores each row once.
    """
    from vitbench.store.legacy import import_legacy, read_legacy

    read_legacy(directory)  # fail on a malformed file before a database is created
    with open_for_writing(directory, url) as st:
        counts = import_legacy(directory, st)
        label = st.label
    rows = [{"table": name, "rows imported": n} for name, n in counts.items()]
    emit(rows, OutputFormat.table, title=f"imported into {label}")
