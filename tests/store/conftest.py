"""Helpers for the store tests: raw SQL beside the store, and processes that start together."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

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


def run_sql(url: str, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one statement in its own engine and transaction (not the store's code)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


@pytest.fixture
def sql(store_url: str) -> SqlRunner:
    """``sql("SELECT ...", name=value)`` against the test's database, bypassing the store."""
    return lambda statement, **params: run_sql(store_url, statement, **params)


#: preamble of the child processes: wait until the parent says go, so all start at once
_CHILD = """
import json, os, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
{setup}
Path(args["ready"], str(args["n"])).touch()
while not Path(args["go"]).exists():
    time.sleep(0.005)
{work}
"""


def run_together(
    tmp_path: Path, n: int, setup: str, work: str, extra: dict[str, Any], timeout: float = 60
) -> list[str]:
    """Start ``n`` Python processes, release them at the same moment; return their stdout."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    ready.mkdir()
    code = _CHILD.format(setup=setup, work=work)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                code,
                json.dumps({**extra, "n": i, "ready": str(ready), "go": str(go)}),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    _wait_ready(ready, n, procs, timeout)
    go.touch()
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        outs.append(out.strip())
    return outs


def _wait_ready(ready: Path, n: int, procs: Sequence[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(list(ready.iterdir())) < n:
        failed = [p for p in procs if p.poll() not in (None, 0)]
        if failed:
            raise AssertionError(failed[0].communicate()[1])
        assert time.monotonic() < deadline, "child processes did not get ready"
        time.sleep(0.01)
