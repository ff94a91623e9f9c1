"""Atomic writes: the new file appears whole, or the old one stays and nothing is left behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from vitbench.files import atomic_write, file_stem


def test_writes_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.txt"
    assert atomic_write(path, lambda tmp: tmp.write_text("one")) == path
    atomic_write(path, lambda tmp: tmp.write_text("two"))
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["out.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("old")

    def fail(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, fail)
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]


def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    plain, atomic = tmp_path / "plain", tmp_path / "atomic"
    plain.write_text("x")
    atomic_write(atomic, lambda tmp: tmp.write_text("x"))
    assert atomic.stat().st_mode == plain.stat().st_mode


@pytest.mark.parametrize(
    "name", ["models/my_vit.py:tiny", "hf-hub:timm/vit_base_patch16_224.augreg_in21k", "a b?*"]
)
def test_a_model_name_makes_one_portable_file_name(tmp_path: Path, name: str) -> None:
    stem = file_stem(name)
    (tmp_path / f"{stem}.png").write_bytes(b"")
    assert [p.name for p in tmp_path.iterdir()] == [f"{stem}.png"]  # one file, no folders
    assert not set(stem) & set('/\\:*?"<>| ')  # none of the characters Windows refuses
