"""The results store: typed rows with their environment, appended atomically to CSV tables.

A store is a directory (``results/`` by default). Each kind of measurement is one table, a
CSV file ``<store>/<table>.csv`` that loads straight into pandas. Appending rewrites the file
through a temporary file and ``os.replace`` under a lock, so a reader never sees a torn file
and an interrupted write leaves the earlier rows as they were. Rows already stored are copied
verbatim: a new run never changes or drops them, even when it brings new columns.
"""

from __future__ import annotations

import csv
import datetime as _dt
import fcntl
import json
import math
import os
import platform
import socket
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from vitbench import __version__
from vitbench.errors import VitbenchError

SCHEMA_VERSION = 1
DEFAULT_STORE = Path("results")

#: Columns every row starts with, in this order; measurement fields follow.
LEADING_COLUMNS = ("schema_version", "run_id", "timestamp")


def new_run_id() -> str:
    """A short unique id shared by every row that one command invocation writes."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str | Any = "cpu") -> str:
    """Human-readable name of the hardware behind a torch device string."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    if dev.type == "meta":
        return "meta (no hardware)"
    return _cpu_name()


def environment(device: str | Any = "cpu") -> dict[str, Any]:
    """The environment a measurement came from, as flat ``env_*`` columns."""
    import timm
    import torch

    dev = torch.device(device)
    env: dict[str, Any] = {
        "env_vitbench": __version__,
        "env_torch": torch.__version__,
        "env_timm": timm.__version__,
        "env_python": platform.python_version(),
        "env_platform": platform.platform(terse=True),
        "env_host": socket.gethostname(),
        "env_device_type": dev.type,
        "env_device": device_name(dev),
        "env_threads": torch.get_num_threads(),
        "env_cpu_count": os.cpu_count(),
        "env_cuda": torch.version.cuda if dev.type == "cuda" else "",
        "env_cudnn": (torch.backends.cudnn.version() or "") if dev.type == "cuda" else "",
        "env_tf32_matmul": (torch.backends.cuda.matmul.allow_tf32 if dev.type == "cuda" else ""),
        "env_cudnn_benchmark": torch.backends.cudnn.benchmark if dev.type == "cuda" else "",
    }
    return env


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


def format_cell(value: Any) -> str:
    """Render one value for CSV: empty for missing, JSON for containers, repr-free numbers."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def table_path(store: str | os.PathLike, table: str) -> Path:
    return Path(store) / f"{table}.csv"


@contextmanager
def _locked(path: Path):
    """Exclusive lock on the store directory itself, so no lock file is left behind."""
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def append_records(
    records: Iterable[Mapping[str, Any]], store: str | os.PathLike, table: str
) -> Path:
    """Append rows to ``<store>/<table>.csv`` atomically and return the file's path.

    Earlier rows are kept byte for byte as cells; columns that only the new rows have are
    added at the end of the header (earlier rows get empty cells there).
    """
    rows = [dict(r) for r in records]
    path = table_path(store, table)
    if not rows:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VitbenchError(f"cannot create results directory {path.parent}: {exc}") from exc
    if path.parent.exists() and not os.access(path.parent, os.W_OK):
        raise VitbenchError(f"results directory {path.parent} is not writable")
    with _locked(path):
        header: list[str] = []
        old_rows: list[list[str]] = []
        if path.exists() and path.stat().st_size > 0:
            with open(path, newline="") as fh:
                reader = csv.reader(fh)
                header = next(reader, [])
                old_rows = list(reader)
        new_cols: list[str] = [] if header else list(LEADING_COLUMNS)
        for row in rows:
            for key in row:
                if key not in header and key not in new_cols:
                    new_cols.append(key)
        full_header = header + new_cols
        fd, tmp = tempfile.mkstemp(prefix=f".{table}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(full_header)
                pad = [""] * len(new_cols)
                for old in old_rows:
                    writer.writerow(old + pad[: len(full_header) - len(old)])
                for row in rows:
                    writer.writerow([format_cell(row.get(col)) for col in full_header])
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return path


def read_table(stores: str | os.PathLike | Iterable[str | os.PathLike], table: str) -> pd.DataFrame:
    """Load one table from one or more stores into a DataFrame (with a ``store`` column).

    A store may also be given as the CSV file itself.
    """
    if isinstance(stores, (str, os.PathLike)):
        stores = [stores]
    frames = []
    for store in stores:
        p = Path(store)
        path = p if p.suffix == ".csv" else table_path(p, table)
        if not path.exists():
            continue
        df = pd.read_csv(path)
        df.insert(0, "store", str(p))
        frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True, sort=False)
