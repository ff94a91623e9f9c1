"""The results store: a database of typed rows, each with the environment that produced it.

By default a store is an SQLite file, ``<dir>/vitbench.db``, in a results directory that also
holds the files runs make (checkpoints); any SQLAlchemy URL (PostgreSQL for a store several
machines share) works the same way. See docs/store.md for the tables, keys and claims.

- :func:`open_store` opens and checks a store before anything is measured;
- :class:`Recorder` stamps a run's records and writes each finished unit in its own transaction;
- :func:`read_table` loads a table from one or more stores into a pandas DataFrame;
- :func:`claim` gives a unit of work (a sweep cell, a training run) to one process at a time.
"""

from vitbench.store.claims import Claim, Holder, claim, holder
from vitbench.store.database import (
    DB_FILE,
    DEFAULT_STORE,
    STORE_ENV,
    Store,
    StoreError,
    open_store,
    resolve_url,
)
from vitbench.store.reading import read_table
from vitbench.store.recorder import Recorder, stamp_records
from vitbench.store.schema import LEADING_COLUMNS, SCHEMA_VERSION, TABLES

__all__ = [
    "DB_FILE",
    "DEFAULT_STORE",
    "LEADING_COLUMNS",
    "SCHEMA_VERSION",
    "STORE_ENV",
    "TABLES",
    "Claim",
    "Holder",
    "Recorder",
    "Store",
    "StoreError",
    "claim",
    "holder",
    "open_store",
    "read_table",
    "resolve_url",
    "stamp_records",
]
