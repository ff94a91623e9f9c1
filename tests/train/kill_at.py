"""Run a `vitbench` command that signals itself at one point of its writes to the store.

    python kill_at.py TABLE N before|after SIGNAL -- vitbench arguments...

sends SIGNAL to its own process just before (or just after) the N-th write to TABLE: a kill
at an exact point between two stored units, with no timing to race.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from vitbench.cli import main
from vitbench.store.recorder import Recorder


def arm(table: str, nth: int, when: str, sig: signal.Signals) -> None:
    """Make the N-th ``Recorder.write`` to ``table`` signal this process ``when`` it happens."""
    write, calls = Recorder.write, []

    def dying(self: Recorder, name: str, records: Any) -> list[dict[str, Any]]:
        calls.append(name)
        hit = name == table and calls.count(table) == nth
        if hit and when == "before":
            os.kill(os.getpid(), sig)
        rows = write(self, name, records)
        if hit and when == "after":
            os.kill(os.getpid(), sig)
        return rows

    Recorder.write = dying  # type: ignore[method-assign]


if __name__ == "__main__":
    table, nth, when, sig, sep, *argv = sys.argv[1:]
    assert sep == "--" and when in ("before", "after")
    arm(table, int(nth), when, signal.Signals[sig])
    main(argv)
