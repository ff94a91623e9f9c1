"""nox sessions: tests, lint, demo and benchmarks. CI runs `tests` through .ci/run."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = "3.11"


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The whole suite, slow tests included."""
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", "vitbench", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "vitbench", "tests", "benchmarks", "noxfile.py")


@nox.session(python=PYTHON)
def demo(session: nox.Session) -> None:
    """The main job on embedded defaults, ending in a report (minutes on 2 cores)."""
    session.install("-e", ".")
    out = Path(session.create_tmp()) / "demo"
    shutil.rmtree(out, ignore_errors=True)
    session.run("vitbench", "demo", "--out", str(out), *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Speed targets: counting, appending to a 300,000-row store, writing the example report."""
    session.install("-e", ".")
    session.run("python", "benchmarks/count_speed.py")
    session.run("python", "benchmarks/store_speed.py", *session.posargs)
    session.run("python", "benchmarks/report_speed.py")
