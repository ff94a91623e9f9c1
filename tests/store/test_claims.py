"""Claims: one holder at a time, dead holders taken over, heartbeats renewed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_processes import run_together

from vitbench.store import Claim, Holder, Store, claim, holder, open_store
from vitbench.store import claims as claims_module


def _dead_pid() -> int:
    """The id of a process that has just ended on this host."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(sql, *, host: str, pid: int, age_s: float, status: str = "running") -> None:
    """A claim row as another process would have left it, written straight into the table."""
    beat = time.time() - age_s
    sql(
        "INSERT INTO claims"
        " (kind, key, owner, host, pid, status, claimed_at, heartbeat_at, payload) VALUES"
        " ('sweep', 'cell-1', :owner, :host, :pid, :status, :beat, :beat, :payload)",
        owner=f"{host}:{pid}:old",
        host=host,
        pid=pid,
        status=status,
        beat=beat,
        payload=json.dumps({"run_id": "r-old", "epoch": 3}),
    )


def test_first_claim_holds_second_sees_holder(opened: Store) -> None:
    first = claim(opened, "sweep", "cell-1", {"run_id": "r1"})
    assert isinstance(first, Claim) and first.taken_from is None
    second = claim(opened, "sweep", "cell-1")
    assert isinstance(second, Holder) and second.payload == {"run_id": "r1"}
    assert second.pid == __import__("os").getpid() and second.status == "running"
    assert "process" in second.describe()


def test_dead_holder_on_this_host_is_taken_over(opened: Store, sql) -> None:
    _plant(sql, host=socket.gethostname(), pid=_dead_pid(), age_s=0)
    got = claim(opened, "sweep", "cell-1", {"attempt": 2})
    assert isinstance(got, Claim) and got.taken_from is not None
    assert got.payload == {"run_id": "r-old", "epoch": 3, "attempt": 2}
    got.update(epoch=4)
    stored = holder(opened, "sweep", "cell-1")
    assert stored is not None and stored.payload == {"run_id": "r-old", "epoch": 4, "attempt": 2}
    assert stored.owner == got.owner


def test_live_holder_elsewhere_is_not_taken_over(opened: Store, sql) -> None:
    _plant(sql, host="elsewhere", pid=1, age_s=5)
    got = claim(opened, "sweep", "cell-1")
    assert isinstance(got, Holder) and got.host == "elsewhere"


def test_stale_heartbeat_elsewhere_is_taken_over(opened: Store, sql) -> None:
    _plant(sql, host="elsewhere", pid=1, age_s=3600)
    got = claim(opened, "sweep", "cell-1")
    assert isinstance(got, Claim) and got.taken_from is not None
    assert got.taken_from.host == "elsewhere" and got.payload["run_id"] == "r-old"


def test_stale_limit_comes_from_the_environment(opened: Store, sql, monkeypatch) -> None:
    _plant(sql, host="elsewhere", pid=1, age_s=5)
    monkeypatch.setenv("VITBENCH_CLAIM_STALE_S", "1")
    assert isinstance(claim(opened, "sweep", "cell-1"), Claim)


@pytest.mark.parametrize("host", ["elsewhere", "here"])
def test_done_claims_are_never_taken(opened: Store, sql, host: str) -> None:
    name = socket.gethostname() if host == "here" else host
    _plant(sql, host=name, pid=_dead_pid(), age_s=10**6, status="done")
    got = claim(opened, "sweep", "cell-1")
    assert isinstance(got, Holder) and got.status == "done"


def test_finished_claim_is_done(opened: Store) -> None:
    with claim(opened, "train", "run-a") as held:
        assert isinstance(held, Claim)
    stored = holder(opened, "train", "run-a")
    assert stored is not None and stored.status == "done"
    assert isinstance(claim(opened, "train", "run-a"), Holder)


def test_failure_inside_releases_the_claim_and_keeps_its_payload(opened: Store) -> None:
    with pytest.raises(RuntimeError), claim(opened, "train", "run-a") as held:
        held.update(run_id="r-7")
        raise RuntimeError("training failed")
    assert holder(opened, "train", "run-a").status == "released"
    again = claim(opened, "train", "run-a")
    assert isinstance(again, Claim) and again.payload == {"run_id": "r-7"}


def test_release_lets_another_process_claim(opened: Store, store_url: str) -> None:
    held = claim(opened, "train", "run-a")
    assert isinstance(held, Claim)
    code = (
        "import sys; from vitbench.store import open_store, claim, Claim;"
        "print(isinstance(claim(open_store(sys.argv[1]), 'train', 'run-a'), Claim))"
    )
    other = [sys.executable, "-c", code, store_url]
    held.release()
    assert subprocess.run(other, capture_output=True, text=True).stdout.strip() == "True"


def test_heartbeat_thread_renews(opened: Store, monkeypatch) -> None:
    monkeypatch.setattr(claims_module, "HEARTBEAT_S", 0.05)
    held = claim(opened, "train", "run-a")
    assert isinstance(held, Claim)
    start = holder(opened, "train", "run-a").heartbeat_at
    with held:
        deadline = time.time() + 10
        while holder(opened, "train", "run-a").heartbeat_at == start:
            assert time.time() < deadline, "heartbeat was not renewed"
            time.sleep(0.05)
        assert held._thread is not None and held._thread.is_alive()
    assert not held._thread.is_alive()


def test_claims_are_kept_apart_by_kind_and_key(opened: Store) -> None:
    assert isinstance(claim(opened, "sweep", "a"), Claim)
    assert isinstance(claim(opened, "sweep", "b"), Claim)
    assert isinstance(claim(opened, "train", "a"), Claim)


_CLAIMER_SETUP = "from vitbench.store import open_store, claim, Claim\nst = open_store(args['url'])"
_CLAIMER_WORK = "print(isinstance(claim(st, 'sweep', 'contested'), Claim))"


def test_eight_processes_race_for_one_claim(store_url: str, tmp_path: Path) -> None:
    open_store(store_url).close()
    outs = run_together(tmp_path, 8, _CLAIMER_SETUP, _CLAIMER_WORK, {"url": store_url})
    assert sorted(outs) == ["False"] * 7 + ["True"]
