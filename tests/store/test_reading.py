"""read_table: one table from several stores, each read once, with a column saying which."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vitbench.store import DB_FILE, StoreError, open_store, read_table


def _fill(target: str | Path, models: list[str], **extra: object) -> str:
    with open_store(target) as st:
        st.write(
            "profile",
            [{"run_id": "r", "model": m, "macs": i, **extra} for i, m in enumerate(models)],
        )
        return st.label


def test_two_stores_are_concatenated_with_a_store_column(store_url: str, tmp_path: Path) -> None:
    local = _fill(tmp_path / "local", ["a", "b"], fused=True)
    other = _fill(store_url, ["c"], note="x")
    df = read_table([tmp_path / "local", store_url], "profile")
    assert df["model"].tolist() == ["a", "b", "c"]
    assert df["store"].tolist() == [local, local, other]
    assert df["macs"].tolist() == [0, 1, 0]
    assert df["note"][:2].isna().all() and df["note"][2] == "x"


def test_same_store_listed_twice_is_read_once(tmp_path: Path) -> None:
    _fill(tmp_path / "results", ["a", "b"])
    df = read_table([tmp_path / "results", tmp_path / "results" / DB_FILE], "profile")
    assert df["model"].tolist() == ["a", "b"]


def test_an_open_store_can_be_read(store_url: str) -> None:
    _fill(store_url, ["a"])
    with open_store(store_url, create=False) as st:
        df = read_table([st, st], "profile")
        assert df["model"].tolist() == ["a"] and df["store"][0] == st.label


def test_empty_tables_give_an_empty_frame(store_url: str) -> None:
    _fill(store_url, ["a"])
    df = read_table(store_url, "train_runs")
    assert isinstance(df, pd.DataFrame) and df.empty


def test_reading_writes_nothing(tmp_path: Path) -> None:
    _fill(tmp_path, ["a"])
    path = tmp_path / DB_FILE
    before = path.read_bytes()
    read_table(tmp_path, "profile")
    assert path.read_bytes() == before


def test_missing_store_is_an_error_naming_it(tmp_path: Path) -> None:
    _fill(tmp_path / "a", ["a"])
    with pytest.raises(StoreError, match="missing"):
        read_table([tmp_path / "a", tmp_path / "missing"], "profile")
    assert not (tmp_path / "missing").exists()


def test_unknown_table_is_refused(tmp_path: Path) -> None:
    _fill(tmp_path, ["a"])
    with pytest.raises(ValueError, match="unknown table"):
        read_table(tmp_path, "nope")
