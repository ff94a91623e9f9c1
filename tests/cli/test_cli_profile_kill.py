"""`vitbench profile` killed part-way, in a real process: what finished stays, exactly once."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from vitbench.store import DB_FILE, open_store, read_table

N_POINTS = 6  # two models, one shape, three batch sizes
COMMAND = [
    sys.executable, "-m", "vitbench", "profile", "vit_tiny_patch16_224", "deit_tiny_patch16_224",
    "--model-kwargs", "depth=2", "--img-size", "32", "--metrics", "params,flops,latency",
    "-b", "1,2,4", "--budget", "0.2", "--warmup", "0", "--threads", "1", "--format", "json",
]  # fmt: skip
START_TIMEOUT_S = 60


def stored_points(db: Path) -> int:
    """Rows in the profile table, read beside the running process (0 before it exists)."""
    try:
        # closed at once: a connection left to the garbage collector keeps the WAL files open
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
            return conn.execute("SELECT count(*) FROM profile").fetchone()[0]
    except sqlite3.OperationalError:  # no database or no table yet
        return 0


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_and_kill(out: Path, sig: signal.Signals, after: int) -> subprocess.CompletedProcess:
    """Start a profile, send ``sig`` once ``after`` points are stored, and wait for the end."""
    proc = subprocess.Popen(
        [*COMMAND, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_sigint,  # a shell's background job would inherit SIGINT ignored
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while stored_points(out / DB_FILE) < after:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the profile ended or stalled before {after} point(s)")
        time.sleep(0.02)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def check_store(out: Path) -> pd.DataFrame:
    """The store opens; every row is whole and stored once; return the rows."""
    with open_store(out, create=False):
        pass
    rows = read_table(out, "profile")
    assert not rows.duplicated(["run_id", "point"]).any()
    assert (rows["status"] == "ok").all() and rows["latency_median_ms"].notna().all()
    assert rows["env_torch"].notna().all()
    return rows


@pytest.mark.parametrize(
    ("sig", "after"),
    [(signal.SIGINT, 1), (signal.SIGINT, 3), (signal.SIGKILL, 2)],
    ids=["sigint-after-1", "sigint-after-3", "sigkill-after-2"],
)
def test_killed_profile_keeps_its_finished_points(tmp_path, sig, after) -> None:
    killed = start_and_kill(tmp_path, sig, after)
    rows = check_store(tmp_path)
    assert after <= len(rows) < N_POINTS, (killed.returncode, killed.stderr)
    assert rows["run_id"].nunique() == 1
    assert list(rows["point"]) == list(range(len(rows)))
    if sig == signal.SIGINT:
        assert killed.returncode == 130, killed.stderr
        assert "finished before the failure are in the store" in killed.stderr
        assert killed.stderr.rstrip().endswith("interrupted")
        printed = [json.loads(line)["point"] for line in killed.stdout.splitlines()]
        # a point stored an instant before the interrupt may not have been printed
        assert printed == list(range(len(printed))) and len(rows) - len(printed) in (0, 1)
    else:
        assert killed.returncode == -signal.SIGKILL

    rerun = subprocess.run([*COMMAND, "--out", str(tmp_path)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    rows = check_store(tmp_path)
    new = rows[rows["run_id"] != rows["run_id"].iloc[0]]
    assert list(new["point"]) == list(range(N_POINTS))
