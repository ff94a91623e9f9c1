"""Helpers for the store's tests: SQL that bypasses the store, and processes started together.

A module of its own (not conftest.py) so tests import it by a name no other test folder uses.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def run_sql(url: str, statement: str, **params: Any) -> list[tuple[Any, ...]]:
    """Run one statement in its own engine and transaction (not the store's code)."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


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
