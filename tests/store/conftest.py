"""Helpers for the store tests: raw SQL beside the store, and processes that start together."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from store_processes import run_sql

from vitbench.store import Store, open_store

SqlRunner = Callable[..., list[tuple[Any, ...]]]


@pytest.fixture(scope="session")
def pg_database(pg_server: Any) -> str:
    """One PostgreSQL database the store tests share, a schema each."""
    return pg_server.create_database(f"store_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """A fresh, empty PostgreSQL namespace for this test: a new schema first on the search path.

    Cheaper than the suite's database per test (CREATE DATABASE copies ~7 MB), same behaviour:
    the store sees an empty database whose tables it creates and reflects in that schema.
    """
    name = f"t_{uuid.uuid4().hex[:12]}"
    run_sql(pg_database, f'CREATE SCHEMA "{name}"')
    return f"{pg_database}?options=-csearch_path%3D{name}"


@pytest.fixture
def opened(store_url: str) -> Iterator[Store]:
    """A fresh store on each backend, closed after the test."""
    with open_store(store_url) as st:
        yield st


@pytest.fixture
def sql(store_url: str) -> SqlRunner:
    """``sql("SELECT ...", name=value)`` against the test's database, bypassing the store."""
    return lambda statement, **params: run_sql(store_url, statement, **params)
