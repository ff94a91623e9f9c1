"""`vitbench report` only reads: a report loads neither torch, timm nor the measuring code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from report_fixtures import write_full_store

#: modules `vitbench report` must not load (directly or through anything it imports)
TORCH = ("torch", "timm")
#: and what `vitbench.report` itself must not load either
FORBIDDEN = (*TORCH, "vitbench.measure", "vitbench.attention", "vitbench.train", "vitbench.zoo")

REPORT = "from vitbench.report import build_report; build_report([{store!r}], {out!r})"
CLI = """
from vitbench.cli import main
try:
    main(["report", {store!r}, "--out", {out!r}])
except SystemExit as exc:
    assert exc.code == 0, exc.code
"""
LOADED = "\nimport json, sys\nprint(json.dumps([m for m in {modules!r} if m in sys.modules]))"


def loaded_by(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` are in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    script = code + LOADED.format(modules=modules)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_build_report_imports_no_torch(tmp_path: Path) -> None:
    store, out = str(write_full_store(tmp_path / "results")), str(tmp_path / "out")
    assert loaded_by(REPORT.format(store=store, out=out), FORBIDDEN) == []
    assert (tmp_path / "out" / "report.md").is_file()


def test_report_command_imports_no_torch(tmp_path: Path) -> None:
    store, out = str(write_full_store(tmp_path / "results")), str(tmp_path / "out")
    assert loaded_by(CLI.format(store=store, out=out), TORCH) == []
    assert (tmp_path / "out" / "report.md").is_file()
