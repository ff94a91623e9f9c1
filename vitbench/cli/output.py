"""Printing records: a rich table for people, CSV or JSON lines for pipes."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from vitbench.missing import MISSING, is_missing

#: progress bars, warnings and errors go to stderr so stdout stays machine-readable
err_console = Console(stderr=True)


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _clean(value: Any) -> Any:
    return None if is_missing(value) else value


def format_cell(value: Any) -> str:
    """One value as a CSV cell: empty for missing, JSON for containers, repr-free numbers."""
    if is_missing(value):
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def scaled(factor: float = 1.0, spec: str = ",.4g", suffix: str = "") -> Callable[[Any], str]:
    """A table-cell formatter: the value times ``factor`` in format ``spec``, '-' when missing."""

    def fmt(value: Any) -> str:
        if is_missing(value):
            return MISSING
        return f"{float(value) * factor:{spec}}{suffix}"

    return fmt


def _fmt_cell(value: Any) -> str:
    if is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1e4 or abs(value) < 1e-3:
            return f"{value:.3g}"
        return f"{value:.4g}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def emit(
    records: Sequence[Mapping[str, Any]],
    fmt: OutputFormat | str = OutputFormat.table,
    *,
    columns: Sequence[str] | None = None,
    title: str | None = None,
    formatters: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Write records to stdout in the chosen format.

    ``table`` shows ``columns`` (with optional per-column display ``formatters`` that take the
    record's value, and display ``headers``); ``csv`` and ``json`` (one object per line) carry
    every field, unformatted.
    """
    fmt = OutputFormat(fmt)
    if fmt is OutputFormat.json:
        for rec in records:
            sys.stdout.write(
                json.dumps({k: _clean(v) for k, v in rec.items()}, default=_json_default) + "\n"
            )
        sys.stdout.flush()
        return
    if fmt is OutputFormat.csv:
        keys: list[str] = []
        for rec in records:
            keys.extend(k for k in rec if k not in keys)
        writer = csv.DictWriter(sys.stdout, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        for rec in records:
            writer.writerow({k: format_cell(v) for k, v in rec.items()})
        sys.stdout.flush()
        return
    cols = list(columns) if columns else list(records[0].keys()) if records else []
    formatters = formatters or {}
    headers = headers or {}
    table = Table(title=title, show_lines=False)
    for col in cols:
        table.add_column(headers.get(col, col), overflow="fold")
    for rec in records:
        table.add_row(*(formatters.get(c, _fmt_cell)(rec.get(c)) for c in cols))
    # a pipe or file gets the whole table rather than rich's 80-column default
    Console(width=None if sys.stdout.isatty() else 240).print(table)


def error(message: str) -> None:
    """One ``error:`` line on stderr; the message is printed as it is, never read as rich
    markup (``pip install 'vitbench[hf]'`` keeps its brackets)."""
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(
        f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True
    )


def info(message: str) -> None:
    err_console.print(escape(message), highlight=False, soft_wrap=True)


def progress_bar(
    *extra: ProgressColumn, counter: str = "{task.completed}/{task.total}", disable: bool = False
) -> Progress:
    """The progress display every command uses: description, bar, counter, elapsed (stderr)."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn(counter),
        TimeElapsedColumn(),
        *extra,
        console=err_console,
        transient=True,
        disable=disable,
    )
