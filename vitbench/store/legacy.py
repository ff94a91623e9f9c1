"""Importing a CSV store written by vitbench 0.1 (``<dir>/<table>.csv``) into a database.

Every file is read and checked before anything is written: a byte-order mark is dropped, the
delimiter is detected (``,``, ``;`` or tab, as spreadsheets save), and a row whose field count
differs from the header's, a broken quote or a repeated column name stops the import with one
line naming the file and line. Cells are typed as pandas would read them (integers, floats,
``true``/``false``, empty = missing). Rollout overlays saved under ``plots/<run_id>/`` are
imported into the ``figures`` table and named in their attention rows. Importing twice stores
each row once (natural keys).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vitbench.errors import VitbenchError
from vitbench.store.database import Store
from vitbench.store.schema import TABLES

DELIMITERS = ",;\t"


class LegacyFormatError(VitbenchError):
    """A CSV table that cannot be read without guessing."""


def legacy_tables(directory: str | os.PathLike) -> list[Path]:
    """The 0.1 CSV tables in ``directory`` (known table names only)."""
    d = Path(directory)
    return [d / f"{name}.csv" for name in TABLES if (d / f"{name}.csv").is_file()]


def _cell(text: str) -> Any:
    """A CSV cell typed the way pandas reads it; empty is missing."""
    if text == "":
        return None
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            continue
    return text


def _dialect(path: Path, text: str) -> str:
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in DELIMITERS}
    delimiter = max(counts, key=counts.get)
    if counts[delimiter] == 0:
        raise LegacyFormatError(f"{path}: the header has a single column; not a vitbench table")
    return delimiter


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of one CSV table, checked strictly."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise LegacyFormatError(f"{path}: cannot be read as UTF-8 text ({exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_dialect(path, text), strict=True)
    try:
        header = next(reader)
        dupes = sorted({h for h in header if header.count(h) > 1 or not h.strip()})
        if dupes:
            raise LegacyFormatError(f"{path}: empty or repeated column names {dupes}")
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise LegacyFormatError(
                    f"{path} line {reader.line_num}: {len(row)} fields, the header has "
                    f"{len(header)} (a stray quote or delimiter?)"
                )
            yield {h: _cell(v) for h, v in zip(header, row, strict=True)}
    except csv.Error as exc:
        raise LegacyFormatError(f"{path} line {reader.line_num}: {exc}") from None


def _number_points(rows: list[dict[str, Any]]) -> None:
    """Profile rows of 0.1 had no ``point``: number them per run in file order."""
    seen: dict[Any, int] = {}
    for row in rows:
        if row.get("point") is None:
            row["point"] = seen.get(row.get("run_id"), 0)
        seen[row.get("run_id")] = int(row["point"]) + 1


def read_legacy(directory: str | os.PathLike) -> dict[str, list[dict[str, Any]]]:
    """Every 0.1 table of ``directory`` as checked, typed rows."""
    tables = {path.stem: list(_rows(path)) for path in legacy_tables(directory)}
    if not tables:
        raise LegacyFormatError(f"{directory} holds no vitbench CSV tables ({', '.join(TABLES)})")
    if "profile" in tables:
        _number_points(tables["profile"])
    return tables


def _rollout_figures(directory: Path, attention: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rollout PNGs 0.1 saved beside the store, as figure rows; names them in ``attention``."""
    figures: dict[tuple[str, str], dict[str, Any]] = {}
    for row in attention:
        stem = str(row.get("model", "")).replace("/", "_")
        path = directory / "plots" / str(row.get("run_id")) / f"{stem}_rollout.png"
        if not path.is_file():
            continue
        name = f"{stem}_rollout"
        row["rollout_figure"] = name
        figures.setdefault(
            (str(row["run_id"]), name),
            {
                "schema_version": row.get("schema_version"),
                "run_id": row["run_id"],
                "timestamp": row.get("timestamp"),
                "name": name,
                "media_type": "image/png",
                "data": path.read_bytes(),
            },
        )
    return list(figures.values())


def import_legacy(directory: str | os.PathLike, store: Store) -> dict[str, int]:
    """Import a 0.1 CSV store into ``store``; return the rows newly stored per table.

    Everything is read and checked first, so a malformed file leaves the store untouched.
    """
    directory = Path(directory)
    tables = read_legacy(directory)
    tables["figures"] = _rollout_figures(directory, tables.get("attention", []))
    return {name: store.write(name, rows) for name, rows in tables.items() if rows}
