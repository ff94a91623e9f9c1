"""Files written whole or not at all: a reader never sees half a checkpoint or report."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Make ``path`` by calling ``write`` on a temporary file beside it, then renaming that over.

    The temporary file is flushed to disk before the rename (``os.replace``), so an interrupted
    write, or a crash soon after, leaves the previous file whole; on any failure the temporary
    file is removed and the error raised. It is created like any new file (the umask applies).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def file_stem(name: str) -> str:
    """A model name made safe as one file name on any system: characters other than letters,
    digits, ``.``, ``-`` and ``_`` become ``_`` (``models/my_vit.py:tiny`` ->
    ``models_my_vit.py_tiny``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
