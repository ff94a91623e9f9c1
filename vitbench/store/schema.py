"""The store's tables, their natural keys, and how a record's values become database cells.

Every table starts with the same columns (``id``, ``record_key``, ``schema_version``,
``run_id``, ``timestamp``); measurement fields follow and new ones are added as columns when a
record first carries them. ``record_key`` is the natural key of a row spelled as text and is
unique, so writing the same record twice stores it once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: version of the database layout; 1 was the CSV store of vitbench 0.1
SCHEMA_VERSION = 2

#: columns every row starts with, in this order; measurement fields follow
LEADING_COLUMNS = ("schema_version", "run_id", "timestamp")
#: bookkeeping columns that readers do not see
INTERNAL_COLUMNS = ("id", "record_key")


@dataclass(frozen=True)
class TableSpec:
    """One kind of record: its table name and the fields that identify a row."""

    name: str
    key: tuple[str, ...]
    doc: str

    def record_key(self, row: Mapping[str, Any]) -> str:
        """The natural key as canonical JSON (missing fields are null)."""
        return json.dumps([to_cell(row.get(k)) for k in self.key], separators=(",", ":"))


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec(
            "profile",
            ("run_id", "model", "img_size", "patch_size", "seq_len", "batch_size", "point"),
            "one model at one shape and batch size (`point` numbers the run's rows)",
        ),
        TableSpec(
            "profile_fit",
            ("run_id", "model", "batch_size", "x", "metric"),
            "one power-law fit of a metric against tokens",
        ),
        TableSpec(
            "attention",
            ("run_id", "model", "sentence", "layer", "head"),
            "one attention head (on one sentence, for text)",
        ),
        TableSpec("train_epochs", ("run_id", "epoch"), "one training epoch"),
        TableSpec("train_runs", ("run_id",), "one finished training run"),
        TableSpec(
            "token_reduction",
            ("run_id", "point"),
            "a trained model tested at one token merging or pruning point",
        ),
        TableSpec("sweep", ("config_hash",), "one sweep cell, trained once per store"),
        TableSpec("pretrain_epochs", ("run_id", "epoch"), "one epoch of MAE pre-training"),
        TableSpec("figures", ("run_id", "name"), "a PNG figure a run made, as bytes"),
    )
}


def table_spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"unknown table '{name}'; tables: {', '.join(TABLES)}") from None


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def to_cell(value: Any) -> Any:
    """A record value as a database cell: None for missing and NaN, JSON text for containers."""
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and not _INT64_MIN <= value <= _INT64_MAX
    ):
        return str(value)  # beyond a BIGINT column (and SQLite's integers): kept exactly as text
    if isinstance(value, (bool, int, str, bytes)):
        return value
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"), default=_json_default)
    if hasattr(value, "item"):  # numpy and torch scalars
        return to_cell(value.item())
    return str(value)


def _json_default(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)


#: kinds of cell in widening order: a column holding one kind can take the ones before it
KINDS = ("bool", "int", "float", "text", "blob")


def kind_of(cell: Any) -> str:
    if isinstance(cell, bool):
        return "bool"
    if isinstance(cell, int):
        return "int"
    if isinstance(cell, float):
        return "float"
    if isinstance(cell, bytes):
        return "blob"
    return "text"


def wider(a: str, b: str) -> str:
    """The kind that holds both ``a`` and ``b`` (text for anything mixed with blob)."""
    if "blob" in (a, b) and a != b:
        return "text"
    return max(a, b, key=KINDS.index)


def as_kind(cell: Any, kind: str) -> Any:
    """A cell as its column's kind: numbers and bools in a text column become their text
    (``true``/``false`` for bools, as JSON spells them), the same on every backend."""
    if cell is None or kind != "text" or isinstance(cell, str):
        return cell
    if isinstance(cell, bool):
        return "true" if cell else "false"
    return str(cell)


def cells(spec: TableSpec, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows of cells with their ``record_key``; fields whose value is missing are left out."""
    rows = []
    for rec in records:
        row = {k: c for k, v in rec.items() if (c := to_cell(v)) is not None}
        row["record_key"] = spec.record_key(rec)
        rows.append(row)
    return rows
