"""Model names and their aliases without importing torch or timm: `vitbench models` lists them.

Importing timm takes about 4 s (it imports torch and torchvision), so the names that
:func:`vitbench.zoo.list_models` gives are kept in a cache file with what they were made from:
the installed versions of vitbench, timm, torch and torchvision and the modification times of
vitbench's own zoo. When any of those changes, the next listing builds the file again.
"""

from __future__ import annotations

import fnmatch
import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from vitbench import __version__
from vitbench.files import atomic_write

#: environment variable naming the cache directory (default: $XDG_CACHE_HOME/vitbench)
CACHE_ENV = "VITBENCH_CACHE_DIR"
_ZOO = Path(__file__).parent / "zoo"


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vitbench"


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def made_from() -> dict[str, object]:
    """What the list of names depends on: installed versions and vitbench's zoo sources."""
    sources = sorted(_ZOO.rglob("*.py"))
    return {
        "vitbench": __version__,
        **{p: _version(p) for p in ("timm", "torch", "torchvision")},
        "zoo": [len(sources), max((p.stat().st_mtime_ns for p in sources), default=0)],
    }


def model_index() -> dict[str, list[str]]:
    """Every model name a spec may use, with its aliases, sorted as the zoo lists them."""
    path = cache_dir() / "models.json"
    key = made_from()
    try:
        stored = json.loads(path.read_text())
        if stored["made_from"] == key:
            return stored["models"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache yet, or an unreadable one: build it
    models = build_index()
    _write(path, {"made_from": key, "models": models})
    return models


def build_index() -> dict[str, list[str]]:
    """Every name the zoo lists now, with its aliases (imports torch and timm)."""
    from vitbench.zoo import list_models
    from vitbench.zoo.aliases import aliases_by_target

    by_target = aliases_by_target()
    return {name: by_target.get(name, []) for name in list_models()}


def _write(path: Path, content: dict) -> None:
    """Replace the cache file whole; a cache that cannot be written is skipped."""
    try:
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(content)))
    except OSError:
        pass


def matching(names: list[str], pattern: str | None) -> list[str]:
    """The names matching a glob ('vit_*'), or containing the pattern when it has no wildcard
    (the one rule: :func:`vitbench.zoo.list_models` uses it too)."""
    if not pattern:
        return names
    glob = pattern if any(ch in pattern for ch in "*?[") else f"*{pattern}*"
    return [n for n in names if fnmatch.fnmatch(n, glob)]
