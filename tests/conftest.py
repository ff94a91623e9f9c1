"""Shared test set-up: a non-interactive plot backend and a fresh results store per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the hub
if "VITBENCH_CACHE_DIR" not in os.environ:  # the model-name cache, apart from the user's
    import tempfile

    os.environ["VITBENCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="vitbench-cache-")

import pytest
from pg_server import PostgresServer, skip_reason


@pytest.fixture
def store(tmp_path):
    """An empty results store directory."""
    path = tmp_path / "results"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole session; skips where none can run."""
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """SQLAlchemy URL of a brand-new, empty PostgreSQL database for this test."""
    return pg_server.create_database(f"t_{uuid.uuid4().hex[:8]}")


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty store database URL, once per backend: SQLite file and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    return request.getfixturevalue("pg_url")
