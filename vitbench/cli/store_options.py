"""The store options every writing command shares, and printing what finished before a failure."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from vitbench.cli.output import info

OUT_HELP = "Results directory: holds the SQLite store (vitbench.db) and the files runs make."
STORE_HELP = (
    "Database URL of the store (e.g. postgresql://user@host/db); default: "
    "$VITBENCH_STORE, else <out>/vitbench.db."
)


def out_option(default: Path = Path("results")) -> Any:
    return typer.Option(default, "--out", help=OUT_HELP)


def store_option() -> Any:
    return typer.Option(None, "--store", help=STORE_HELP, envvar="VITBENCH_STORE")


def open_for_writing(out: Path, url: str | None):  # -> vitbench.store.Store
    """Open and check the store before anything is measured; ``out`` holds its files."""
    from vitbench.store import open_store

    return open_store(url or out, artifacts=out)


@contextmanager
def print_on_failure(
    records: Sequence[dict[str, Any]], show: Callable[[Sequence[dict[str, Any]]], None]
) -> Iterator[None]:
    """On an error or Ctrl-C, print the records finished (and stored) before it, then re-raise."""
    try:
        yield
    except BaseException:
        if records:
            show(records)
            info(f"{len(records)} record(s) finished before the failure are in the store")
        raise
