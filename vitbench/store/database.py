"""The results database: SQLite in a results directory by default, any SQLAlchemy URL otherwise.

A :class:`Store` is opened and checked before anything is measured (reachable, writable, a
vitbench database of a schema this version understands). Each :meth:`Store.write` is one
transaction: the records of one finished unit of work go in together or not at all, and a
record whose natural key is already stored is not stored again.

SQLite runs in WAL mode with a busy timeout, and write transactions start with
``BEGIN IMMEDIATE`` so concurrent processes queue instead of failing; a store shared by several
machines belongs in PostgreSQL (SQLite is not safe on network file systems).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from vitbench.errors import VitbenchError
from vitbench.store import schema
from vitbench.store.claims import CLAIMS
from vitbench.store.columns import (
    SQL_TYPES,
    add_column,
    column_kinds,
    insert_new,
    readable,
    widen_column,
)
from vitbench.store.schema import INTERNAL_COLUMNS, SCHEMA_VERSION, TABLES

DEFAULT_STORE = Path("results")
DB_FILE = "vitbench.db"
STORE_ENV = "VITBENCH_STORE"
META_TABLE = "vitbench_meta"
BUSY_TIMEOUT_S = 60


class StoreError(VitbenchError):
    """A store that cannot be reached, written, or is not a vitbench database."""


def resolve_url(target: str | os.PathLike | None) -> str:
    """A store argument as an SQLAlchemy URL: a URL, an SQLite file, or a results directory."""
    text = os.fspath(target) if target is not None else os.environ.get(STORE_ENV)
    if not text:
        text = os.fspath(DEFAULT_STORE)
    if "://" in text:
        return text
    path = Path(text)
    if path.suffix not in (".db", ".sqlite", ".sqlite3") or path.is_dir():
        path = path / DB_FILE
    return f"sqlite:///{path.absolute()}"


def _sqlite_path(url: sa.URL) -> Path | None:
    return Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None


def _check_sqlite_file(path: Path, create: bool) -> None:
    if path.is_dir():
        raise StoreError(f"store {path} is a directory, not a database file")
    if path.exists():
        with open(path, "rb") as fh:
            head = fh.read(16)
        if head and head != b"SQLite format 3\x00":
            raise StoreError(f"{path} is not a vitbench store (not an SQLite database)")
        return
    if not create:
        raise StoreError(f"results store not found: {path.parent}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create results directory {path.parent}: {exc}") from exc


def _sqlite_engine(url: sa.URL, readonly: bool) -> Engine:
    engine = sa.create_engine(
        url, poolclass=sa.pool.NullPool, connect_args={"timeout": BUSY_TIMEOUT_S}
    )

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        if not readonly:  # journal_mode=WAL is set once the file is known to be a store
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
        dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


def _engine(url: sa.URL, readonly: bool) -> Engine:
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url, readonly)
    if backend != "postgresql":
        raise StoreError(
            f"'{backend}' is not a database vitbench can use: "
            "give a results directory, an SQLite file or a postgresql:// URL"
        )
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"the driver for {url.get_backend_name()} is not installed ({exc.name}); "
            "for PostgreSQL: pip install 'vitbench[postgres]'"
        ) from None


class Store:
    """An open, checked results database; ``artifacts`` is where files (checkpoints) go."""

    def __init__(self, url: str, *, create: bool = True, artifacts: Path | None = None) -> None:
        try:
            self.url = sa.make_url(url)
        except sa.exc.ArgumentError:
            raise StoreError(f"'{url}' is not a database URL") from None
        if self.url.drivername == "postgresql":  # the driver vitbench[postgres] installs
            self.url = self.url.set(drivername="postgresql+psycopg")
        self.label = self.url.render_as_string(hide_password=True)
        sqlite = _sqlite_path(self.url)
        if sqlite is not None:
            _check_sqlite_file(sqlite, create)
            self.label = _shown(sqlite)
        self.artifacts = artifacts or (sqlite.parent if sqlite else DEFAULT_STORE)
        self.readonly = not create
        self.engine = _engine(self.url, readonly=not create)
        self._columns: dict[str, dict[str, str]] = {}
        self._errors(self._open, create)

    # -- opening -----------------------------------------------------------------------------

    def _errors(self, fn: Any, *args: Any) -> Any:
        """Run ``fn``, turning a driver's failure into one line that names the store."""
        try:
            return fn(*args)
        except StoreError:
            raise
        except sa.exc.SQLAlchemyError as exc:
            first = str(getattr(exc, "orig", exc) or exc).strip().splitlines()[0]
            raise StoreError(f"store {self.label}: {first}") from None

    def _open(self, create: bool) -> None:
        with self.engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
            if META_TABLE in names:
                self._check_version(conn)
        if META_TABLE not in names:
            if names:
                raise StoreError(f"{self.label} is a database but not a vitbench store")
            if not create:
                raise StoreError(f"{self.label} holds no vitbench results")
        if create and not {META_TABLE, CLAIMS.name, *TABLES} <= names:
            # a store made by this version is complete: appending to it creates nothing
            self._use_wal()
            self._create_schema()

    def _use_wal(self) -> None:
        """SQLite: WAL journal (persistent in the file), only once the file is ours to change."""
        if self.engine.dialect.name != "sqlite":
            return
        raw = self.engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA journal_mode=WAL")
        finally:
            raw.close()

    def _check_version(self, conn: Connection) -> None:
        meta = sa.table(META_TABLE, sa.column("key"), sa.column("value"))
        row = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
        version = int(row) if row is not None else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.label} has schema {version}, newer than this vitbench understands "
                f"({SCHEMA_VERSION}): upgrade vitbench to write or read it"
            )
        if version < 1:
            raise StoreError(f"{self.label} is a database but not a vitbench store")

    def _create_schema(self) -> None:
        """The meta, claims and record tables, created once (concurrent openers queue)."""
        md = sa.MetaData()
        sa.Table(
            META_TABLE, md, sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text)
        )
        sa.Table(
            CLAIMS.name,
            md,
            sa.Column("kind", sa.Text, primary_key=True),
            sa.Column("key", sa.Text, primary_key=True),
            sa.Column("owner", sa.Text, nullable=False),
            sa.Column("host", sa.Text),
            sa.Column("pid", sa.BigInteger),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("claimed_at", sa.Float(precision=53)),
            sa.Column("heartbeat_at", sa.Float(precision=53)),
            sa.Column("payload", sa.Text),
        )
        for name in TABLES:
            sa.Table(
                name,
                md,
                sa.Column(
                    "id",
                    sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                    primary_key=True,
                    autoincrement=True,
                ),
                sa.Column("record_key", sa.Text, nullable=False, unique=True),
                sa.Column("schema_version", sa.Integer),
                sa.Column("run_id", sa.Text, index=True),
                sa.Column("timestamp", sa.Text),
            )
        with self.begin() as conn:
            md.create_all(conn, checkfirst=True)
            meta = md.tables[META_TABLE]
            have = conn.execute(sa.select(meta.c.key)).scalars().all()
            fresh = {"schema_version": str(SCHEMA_VERSION), "created_by": _created_by()}
            todo = [{"key": k, "value": v} for k, v in fresh.items() if k not in have]
            if todo:
                conn.execute(meta.insert(), todo)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: serialised schema)."""
        with self.engine.begin() as conn:
            if self.engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7415311)")
            yield conn

    # -- writing -----------------------------------------------------------------------------

    def write(self, table: str, records: Sequence[Mapping[str, Any]]) -> int:
        """Store ``records`` in ``table`` in one transaction; return how many were new."""
        spec = schema.table_spec(table)
        rows = schema.cells(spec, records)
        if not rows:
            return 0
        return self._errors(self._write, spec.name, rows)

    def _write(self, table: str, rows: list[dict[str, Any]]) -> int:
        try:
            with self.begin() as conn:
                columns = self._ensure_columns(conn, table, rows)
                names = list(dict.fromkeys(k for row in rows for k in row))
                target = sa.table(table, *(sa.column(n, SQL_TYPES[columns[n]]) for n in names))
                full = [{n: schema.as_kind(row.get(n), columns[n]) for n in names} for row in rows]
                stmt = insert_new(self.engine.dialect.name, target).returning(target.c.record_key)
                # rowcount of an executemany is -1 on psycopg: count the rows RETURNING gives
                return len(conn.execute(stmt, full).all())
        except BaseException:
            # columns added or widened in the rolled-back transaction are gone again
            self._columns.pop(table, None)
            raise

    def _ensure_columns(
        self, conn: Connection, table: str, rows: list[dict[str, Any]]
    ) -> dict[str, str]:
        """Add columns the rows bring, widen ones whose kind they exceed; return the kinds."""
        needed: dict[str, str] = {}
        for row in rows:
            for name, cell in row.items():
                kind = schema.kind_of(cell)
                needed[name] = schema.wider(needed.get(name, kind), kind)
        columns = self._columns.get(table)
        if columns is None or any(n not in columns for n in needed):
            columns = self._columns[table] = column_kinds(conn, table)
        for name, kind in needed.items():
            if name not in columns:
                add_column(conn, table, name, kind)
                columns[name] = kind
            elif schema.wider(columns[name], kind) != columns[name]:
                old, columns[name] = columns[name], schema.wider(columns[name], kind)
                widen_column(conn, table, name, old, columns[name])
        return columns

    # -- reading -----------------------------------------------------------------------------

    def _select(self, conn: Connection, table: str, where: Mapping[str, Any] | None) -> Any:
        """The rows of ``table`` matching ``where``, in write order, internal columns hidden."""
        schema.table_spec(table)
        t = sa.Table(table, sa.MetaData(), autoload_with=conn)
        dialect = self.engine.dialect.name
        query = sa.select(*(readable(c, dialect) for c in t.c if c.name not in INTERNAL_COLUMNS))
        for key, value in (where or {}).items():
            # a field no row has carried yet (its column comes with the first) matches no row
            query = query.where(t.c[key] == value if key in t.c else sa.false())
        return query.order_by(t.c.id)

    def read(self, table: str, where: Mapping[str, Any] | None = None):  # -> pd.DataFrame
        """Rows of ``table`` in the order they were written, as a DataFrame (empty for a table
        a store made by an earlier vitbench does not have yet)."""
        import pandas as pd

        def load() -> pd.DataFrame:
            with self.engine.connect() as conn:
                if not _has_table(conn, table):
                    return pd.DataFrame()
                return pd.read_sql(self._select(conn, table, where), conn)

        return self._errors(load)

    def rows(self, table: str, **where: Any) -> list[dict[str, Any]]:
        """Rows matching ``where`` as dicts, each cell as stored (missing cells as None)."""

        def load() -> list[dict[str, Any]]:
            with self.engine.connect() as conn:
                if not _has_table(conn, table):
                    return []
                result = conn.execute(self._select(conn, table, where))
                return [dict(row._mapping) for row in result]

        return self._errors(load)

    def counts(self) -> dict[str, int]:
        """Rows per record table."""

        def count() -> dict[str, int]:
            with self.engine.connect() as conn:
                return {
                    name: conn.execute(
                        sa.select(sa.func.count()).select_from(sa.table(name))
                    ).scalar_one()
                    if _has_table(conn, name)
                    else 0
                    for name in TABLES
                }

        return self._errors(count)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.label!r})"


def _shown(path: Path) -> str:
    """A database file as people read it: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _created_by() -> str:
    from vitbench import __version__

    return f"vitbench {__version__}"


def open_store(
    target: str | os.PathLike | None = None,
    *,
    create: bool = True,
    artifacts: str | os.PathLike | None = None,
) -> Store:
    """Open (and with ``create``, initialise) the store at a URL, SQLite file or directory.

    ``target`` None reads the ``VITBENCH_STORE`` environment variable, else ``results/``.
    ``artifacts`` is the directory for files that are not rows (checkpoints): by default the
    SQLite file's directory, or ``results/`` for a server store.
    """
    path = Path(artifacts) if artifacts is not None else None
    return Store(resolve_url(target), create=create, artifacts=path)


def _has_table(conn: Connection, table: str) -> bool:
    """Whether the store has ``table``: an older store gains a newer table on its next write."""
    schema.table_spec(table)  # an unknown name is still an error
    return sa.inspect(conn).has_table(table)
