"""Claims: a unit of work (a sweep cell, a training run) held by one process at a time.

A process claims a unit in the store before it starts, inside one serialised transaction, so
of several processes that try at once exactly one gets it. While it works, a background thread
renews the claim's heartbeat every ``HEARTBEAT_S`` seconds. Another process may take a claim
over when its holder is dead:

- on the same host, when the holder's process id no longer runs;
- on any host, when the heartbeat is older than ``stale_after`` seconds (``STALE_AFTER_S`` by
  default, ``VITBENCH_CLAIM_STALE_S`` to change it; clocks of machines sharing a store should
  agree to well within it).

A claim ends ``done`` when its work is stored; a process that fails or is interrupted releases
it (status ``released``, payload kept), so the next process can do the work and, for a sweep
cell, resume the run the last holder started.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from vitbench.store.database import Store

HEARTBEAT_S = 10.0
STALE_AFTER_S = 120.0
RUNNING, DONE, RELEASED = "running", "done", "released"


def stale_after_s() -> float:
    return float(os.environ.get("VITBENCH_CLAIM_STALE_S", STALE_AFTER_S))


_COLUMNS = ("kind", "key", "owner", "host", "pid", "status", "claimed_at", "heartbeat_at")
CLAIMS = sa.table("claims", *(sa.column(n) for n in (*_COLUMNS, "payload")))


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """Who holds (or finished) a claim, as stored."""

    owner: str
    host: str
    pid: int
    status: str
    heartbeat_at: float
    payload: dict[str, Any]

    def alive(self, now: float, stale_after: float) -> bool:
        if self.status != RUNNING:
            return False
        if self.host == socket.gethostname() and not _pid_running(self.pid):
            return False
        return now - self.heartbeat_at <= stale_after

    def describe(self) -> str:
        age = time.time() - self.heartbeat_at
        return f"process {self.pid} on {self.host} (last heartbeat {age:.0f} s ago)"


@dataclass
class Claim:
    """A claim this process holds; a context manager that keeps its heartbeat going."""

    store: Store
    kind: str
    key: str
    owner: str
    payload: dict[str, Any]
    taken_from: Holder | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def _where(self) -> Any:
        c = CLAIMS.c
        return (c.kind == self.kind) & (c.key == self.key) & (c.owner == self.owner)

    def _update(self, **values: Any) -> None:
        with self.store.begin() as conn:
            conn.execute(CLAIMS.update().where(self._where()).values(**values))

    def update(self, **payload: Any) -> None:
        """Merge ``payload`` into the claim's stored payload (e.g. the run id it started)."""
        self.payload.update(payload)
        self._update(payload=json.dumps(self.payload), heartbeat_at=time.time())

    def finish(self) -> None:
        self._halt()
        self._update(status=DONE, heartbeat_at=time.time())

    def release(self) -> None:
        """Give the unit up unfinished; its payload stays for the next holder (a run to resume)."""
        self._halt()
        self._update(status=RELEASED, heartbeat_at=time.time())

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._update(heartbeat_at=time.time())
            except Exception:  # a missed beat is retried; the work goes on
                continue

    def _halt(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> Claim:
        self._thread = threading.Thread(target=self._beat, daemon=True, name="claim-heartbeat")
        self._thread.start()
        return self

    def __exit__(self, exc_type: type | None, *_: object) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.release()


def _holder(row: Any) -> Holder:
    return Holder(
        owner=row.owner,
        host=row.host or "",
        pid=int(row.pid or 0),
        status=row.status,
        heartbeat_at=float(row.heartbeat_at or 0.0),
        payload=json.loads(row.payload) if row.payload else {},
    )


def holder(store: Store, kind: str, key: str) -> Holder | None:
    """The stored holder of a claim, or None when nobody ever claimed it."""
    c = CLAIMS.c
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(CLAIMS).where((c.kind == kind) & (c.key == key))).first()
    return _holder(row) if row is not None else None


def claim(
    store: Store, kind: str, key: str, payload: dict[str, Any] | None = None
) -> Claim | Holder:
    """Claim ``(kind, key)``: a :class:`Claim` when this process now holds it, else its holder.

    A holder that is dead (see the module's rule) is taken over; the new claim keeps the
    payload the dead holder stored and says whom it was taken from.
    """
    now, me = time.time(), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    mine = {
        "owner": me,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "status": RUNNING,
        "claimed_at": now,
        "heartbeat_at": now,
    }
    c = CLAIMS.c
    where = (c.kind == kind) & (c.key == key)
    with store.begin() as conn:
        row = conn.execute(sa.select(CLAIMS).where(where)).first()
        if row is None:
            values = {"kind": kind, "key": key, "payload": json.dumps(payload or {}), **mine}
            conn.execute(CLAIMS.insert().values(**values))
            return Claim(store, kind, key, me, dict(payload or {}))
        old = _holder(row)
        if old.status == DONE or old.alive(now, stale_after_s()):
            return old
        conn.execute(CLAIMS.update().where(where & (c.owner == old.owner)).values(**mine))
        return Claim(store, kind, key, me, {**old.payload, **(payload or {})}, taken_from=old)
