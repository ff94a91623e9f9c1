"""Columns of the record tables: SQL types by kind of cell, adding and widening columns,
reading cells as stored, and the insert that skips rows whose natural key is stored.

Kinds (``bool``, ``int``, ``float``, ``text``, ``blob``) are defined in :mod:`schema`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

SQL_TYPES = {
    "bool": sa.Boolean(),
    "int": sa.BigInteger(),
    "float": sa.Float(precision=53),
    "text": sa.Text(),
    "blob": sa.LargeBinary(),
}


def insert_new(dialect: str, target: sa.TableClause) -> Any:
    """An INSERT that stores nothing for a row whose ``record_key`` is stored already."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise ValueError(f"stores on {dialect} are not supported: use SQLite or PostgreSQL")
    return insert(target).on_conflict_do_nothing(index_elements=["record_key"])


#: column types as the catalogues spell them (PostgreSQL format_type, SQLite declared type)
_KIND_OF_TYPE = {
    "boolean": "bool",
    "bigint": "int",
    "integer": "int",
    "smallint": "int",
    "double precision": "float",
    "float": "float",
    "real": "float",
    "numeric": "float",
    "bytea": "blob",
    "blob": "blob",
}


def column_kinds(conn: Connection, table: str) -> dict[str, str]:
    """Each column's kind, straight from the catalogue (SQLAlchemy's reflection costs ~20 ms
    in a fresh process, most of an append)."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(f"PRAGMA table_info({_quote(conn, table)})").all()
        named = [(r[1], r[2]) for r in rows]
    else:
        named = conn.execute(
            sa.text(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = to_regclass(:t) AND attnum > 0 AND NOT attisdropped"
            ),
            {"t": _quote(conn, table)},
        ).all()
    return {name: _KIND_OF_TYPE.get(str(sql_type).lower(), "text") for name, sql_type in named}


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def add_column(conn: Connection, table: str, name: str, kind: str) -> None:
    sql_type = SQL_TYPES[kind].compile(dialect=conn.dialect)
    exists = " IF NOT EXISTS" if conn.dialect.name == "postgresql" else ""
    conn.exec_driver_sql(
        f"ALTER TABLE {_quote(conn, table)} ADD COLUMN{exists} {_quote(conn, name)} {sql_type}"
    )


def widen_column(conn: Connection, table: str, name: str, old: str, kind: str) -> None:
    """PostgreSQL columns change type; SQLite stores any kind in any column already."""
    if conn.dialect.name != "postgresql":
        return
    sql_type = SQL_TYPES[kind].compile(dialect=conn.dialect)
    col = _quote(conn, name)
    # boolean has no cast to bigint or double precision, only to integer (true is 1)
    via = "::integer" if old == "bool" and kind in ("int", "float") else ""
    conn.exec_driver_sql(
        f"ALTER TABLE {_quote(conn, table)} ALTER COLUMN {col} TYPE {sql_type} "
        f"USING {col}{via}::{sql_type}"
    )


class _StoredBool(sa.types.UserDefinedType):
    """An SQLite boolean column's cells: 0 and 1 read as bools, anything widened in as stored."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "BOOLEAN"

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        return lambda v: bool(v) if type(v) is int and v in (0, 1) else v


def readable(col: sa.Column, dialect: str) -> Any:
    """A column to select. SQLite keeps each cell's own kind whatever the column was declared
    (a boolean or integer column may since hold floats or text), so its cells are read as
    stored rather than through the declared type."""
    if dialect != "sqlite":
        return col
    kind = _StoredBool() if isinstance(col.type, sa.Boolean) else sa.types.NullType()
    return sa.type_coerce(col, kind).label(col.name)
