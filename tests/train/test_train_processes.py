"""Real `vitbench train` and `vitbench sweep` processes: killed, interrupted, and eight at once.

Kills land at exact points between stored units (``kill_at.py`` signals its own process around
a write), so nothing races; the eight sweeps start together and do race, for the cells.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from vitbench.store import Store, holder, open_store
from vitbench.store.claims import CLAIMS

KILL_AT = Path(__file__).with_name("kill_at.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SMALL = ["--subset", "64", "--batch-size", "32", "--threads", "1", "--device", "cpu"]
TINY = [*SMALL, "--model-kwargs", "depth=1,embed_dim=16,num_heads=2"]
TRAIN = ["train", "--epochs", "3", *TINY]
SWEEP = ["sweep", "--grid", "depth=1,2", "--epochs", "2", *SMALL,
         "--model-kwargs", "embed_dim=16,num_heads=2"]  # fmt: skip

pytestmark = pytest.mark.slow


def vitbench(
    *argv: str, kill: tuple[str, int, str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m vitbench ARGV``; with ``kill=(table, n, before|after, SIGNAL)`` it signals
    itself at its n-th write to that table."""
    head = [sys.executable, "-m", "vitbench"]
    if kill is not None:
        head = [sys.executable, str(KILL_AT), *map(str, kill), "--"]
    return subprocess.run(
        [*head, *argv], capture_output=True, text=True, env=ENV, timeout=300, check=False
    )


def claims(store: Store) -> list[tuple[str, str]]:
    """(kind, status) of every claim in the store."""
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(CLAIMS.c.kind, CLAIMS.c.status))]


def stored_once(store: Store, table: str, *key: str) -> list[tuple]:
    """The natural keys of ``table``'s rows, checked to be distinct."""
    df = store.read(table)
    keys = list(df[list(key)].itertuples(index=False, name=None))
    assert len(keys) == len(set(keys)), f"{table} holds a row twice"
    return keys


def the_run(out: Path) -> str:
    (run,) = (out / "runs").iterdir()
    return run.name


@pytest.mark.parametrize(
    "point",
    [("train_epochs", 1, "after"), ("train_epochs", 2, "before"), ("train_runs", 1, "before")],
    ids=["after-epoch-1", "before-epoch-2-row", "before-run-row"],
)
def test_a_killed_run_resumes_to_every_epoch_stored_once(tmp_path, point) -> None:
    killed = vitbench(*TRAIN, "--out", str(tmp_path), kill=(*point, "SIGKILL"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    run_id, store = the_run(tmp_path), open_store(tmp_path, create=False)
    assert holder(store, "train_run", run_id).status == "running"  # its process is gone
    resumed = vitbench("train", "--resume", run_id, "--out", str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert stored_once(store, "train_epochs", "run_id", "epoch") == [(run_id, e) for e in (1, 2, 3)]
    assert stored_once(store, "train_runs", "run_id") == [(run_id,)]
    assert claims(store) == [("train_run", "done")]


def test_ctrl_c_keeps_the_finished_epochs_and_exits_130(tmp_path) -> None:
    # Ctrl-C after the second epoch's checkpoint, before its row
    point = ("train_epochs", 2, "before", "SIGINT")
    stopped = vitbench(*TRAIN, "--format", "json", "--out", str(tmp_path), kill=point)
    run_id = the_run(tmp_path)
    assert stopped.returncode == 130
    assert "1 record(s) finished before the failure" in stopped.stderr
    assert f"continue the run with --resume {run_id}" in stopped.stderr
    store = open_store(tmp_path, create=False)
    assert holder(store, "train_run", run_id).status == "released"  # a resume need not wait
    assert stored_once(store, "train_epochs", "run_id", "epoch") == [(run_id, 1)]
    resumed = vitbench("train", "--resume", run_id, "--out", str(tmp_path))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert [e for _, e in stored_once(store, "train_epochs", "run_id", "epoch")] == [1, 2, 3]
    assert stored_once(store, "train_runs", "run_id") == [(run_id,)]


def test_a_sweep_killed_mid_cell_resumes_that_cell(tmp_path) -> None:
    killed = vitbench(*SWEEP, "--out", str(tmp_path), kill=("train_epochs", 1, "after", "SIGKILL"))
    assert killed.returncode == -signal.SIGKILL
    run_id = the_run(tmp_path)  # the first cell's run, one epoch stored
    again = vitbench(*SWEEP, "--out", str(tmp_path))
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"depth=1: resuming run {run_id}" in again.stderr and "depth=2: training" in again.stderr
    store = open_store(tmp_path, create=False)
    runs = stored_once(store, "train_runs", "run_id")
    assert len(runs) == 2 and (run_id,) in runs
    assert len(stored_once(store, "train_epochs", "run_id", "epoch")) == 4
    sweep = store.read("sweep")
    assert sorted(sweep.depth) == [1, 2] and run_id in set(sweep.cell_run_id)
    assert sorted(claims(store)) == [("sweep_cell", "done")] * 2 + [("train_run", "done")] * 2


def test_a_kill_between_the_run_row_and_the_sweep_row_trains_nothing_again(tmp_path) -> None:
    killed = vitbench(*SWEEP, "--out", str(tmp_path), kill=("sweep", 1, "before", "SIGKILL"))
    assert killed.returncode == -signal.SIGKILL
    run_id = the_run(tmp_path)
    store = open_store(tmp_path, create=False)
    assert stored_once(store, "train_runs", "run_id") == [(run_id,)] and store.read("sweep").empty
    again = vitbench(*SWEEP, "--out", str(tmp_path))
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"run {run_id} finished before its process died" in again.stderr
    assert len(stored_once(store, "train_runs", "run_id")) == 2  # not three
    assert len(stored_once(store, "train_epochs", "run_id", "epoch")) == 4
    sweep = store.read("sweep")
    assert len(stored_once(store, "sweep", "config_hash")) == 2
    assert sweep.set_index("depth").cell_run_id[1] == run_id


def test_ctrl_c_in_a_sweep_keeps_and_prints_the_finished_cells(tmp_path) -> None:
    # the third epoch row is the second cell's first: the first cell is finished and stored
    stopped = vitbench(*SWEEP, "--out", str(tmp_path), kill=("train_epochs", 3, "after", "SIGINT"))
    assert stopped.returncode == 130
    assert "depth=1" in stopped.stdout and "1 record(s) finished" in stopped.stderr
    store = open_store(tmp_path, create=False)
    assert list(store.read("sweep").depth) == [1]
    finished = set(store.read("sweep").cell_run_id)
    (interrupted,) = {r.name for r in (tmp_path / "runs").iterdir()} - finished  # second cell
    assert sorted(claims(store)) == [
        ("sweep_cell", "done"),
        ("sweep_cell", "released"),
        ("train_run", "done"),
        ("train_run", "released"),
    ]
    again = vitbench(*SWEEP, "--out", str(tmp_path))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "depth=1: in the store" in again.stderr
    assert f"depth=2: resuming run {interrupted}" in again.stderr
    assert len(stored_once(store, "sweep", "config_hash")) == 2
    assert len(stored_once(store, "train_runs", "run_id")) == 2


def test_eight_sweeps_started_together_train_every_cell_once(tmp_path, store_url) -> None:
    grid = ["--grid", "depth=1,2", "--grid", "embed_dim=16,32", "--model-kwargs", "num_heads=2"]
    argv = [sys.executable, "-m", "vitbench", "sweep", *grid, "--epochs", "1", "--subset", "32",
            "--batch-size", "16", "--threads", "1", "--device", "cpu", "--store", store_url,
            "--out", str(tmp_path / "out")]  # fmt: skip
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        for _ in range(8)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
    trained = [
        line for _, err in outputs for line in err.splitlines() if line.endswith(": training")
    ]
    assert len(trained) == 4  # and each cell once:
    assert len({line.split(" ", 2)[2] for line in trained}) == 4
    store = open_store(store_url, create=False)
    assert len(stored_once(store, "train_runs", "run_id")) == 4
    assert len(stored_once(store, "sweep", "config_hash")) == 4
    assert len(stored_once(store, "train_epochs", "run_id", "epoch")) == 4
    assert sorted(claims(store)) == [("sweep_cell", "done")] * 4 + [("train_run", "done")] * 4
