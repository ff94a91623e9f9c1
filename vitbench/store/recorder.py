"""A run's writer: stamps records with the run id, time and environment, and stores them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitbench.environment import new_run_id, utc_now
from vitbench.store.database import Store
from vitbench.store.schema import SCHEMA_VERSION


def stamp_records(
    records: Iterable[Mapping[str, Any]], run_id: str, env: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Give each record the schema version, the run id, a timestamp and the environment."""
    now = utc_now()
    out = []
    for rec in records:
        row: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "run_id": run_id, "timestamp": now}
        row.update(rec)
        for key, value in env.items():
            row.setdefault(key, value)
        out.append(row)
    return out


@dataclass
class Recorder:
    """Writes one run's records as each unit finishes; with no store it only stamps them.

    ``env`` is the environment columns (:func:`vitbench.environment.environment`), computed once.
    """

    store: Store | None
    env: Mapping[str, Any] = field(default_factory=dict)
    run_id: str = field(default_factory=new_run_id)

    def write(self, table: str, records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Stamp ``records``, store them in one transaction, and return the stamped rows."""
        rows = stamp_records(records, self.run_id, self.env)
        if self.store is not None and rows:
            self.store.write(table, rows)
        return rows

    def write_figure(self, name: str, path: str | Path) -> str | None:
        """Store a PNG the run made under ``name``; return the name (None without a store)."""
        if self.store is None:
            return None
        data = Path(path).read_bytes()
        self.write("figures", [{"name": name, "media_type": "image/png", "data": data}])
        return name
