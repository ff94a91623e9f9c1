"""The results store: round trip into pandas, append-only, atomic, environment attached."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from vitbench import store


def _rows(n: int, **extra) -> list[dict]:
    return [{"model": f"m{i}", "macs": 10**9 + i, "ratio": 0.5 + i, **extra} for i in range(n)]


def test_round_trip_into_pandas(tmp_path) -> None:
    env = store.environment("cpu")
    rows = store.stamp_records(_rows(3), store.new_run_id(), env)
    path = store.append_records(rows, tmp_path, "profile")
    df = pd.read_csv(path)
    assert list(df["model"]) == ["m0", "m1", "m2"]
    assert df["macs"].tolist() == [10**9, 10**9 + 1, 10**9 + 2]  # plain integers, exact
    assert (df["schema_version"] == store.SCHEMA_VERSION).all()
    for key in ("env_torch", "env_timm", "env_vitbench", "env_device", "env_threads"):
        assert df[key].notna().all(), key
    assert list(df.columns[:3]) == list(store.LEADING_COLUMNS)


def test_append_never_changes_earlier_rows(tmp_path) -> None:
    path = store.append_records(_rows(2), tmp_path, "t")
    before = path.read_text().splitlines()
    store.append_records(_rows(1, new_column="x"), tmp_path, "t")
    df = store.read_table(tmp_path, "t")
    assert len(df) == 3
    assert df["new_column"].isna().sum() == 2 and df["new_column"].iloc[2] == "x"
    after = path.read_text().splitlines()
    # earlier rows keep every cell; only an empty cell for the new column is added
    assert after[0].startswith(before[0]) and after[0].endswith(",new_column")
    assert [a.removesuffix(",") for a in after[1:3]] == before[1:3]


def test_interrupted_write_leaves_store_intact(tmp_path, monkeypatch) -> None:
    path = store.append_records(_rows(2), tmp_path, "t")
    original = path.read_bytes()

    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        store.append_records(_rows(5), tmp_path, "t")
    assert path.read_bytes() == original
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_containers_and_missing_values(tmp_path) -> None:
    rows = [{"a": None, "b": float("nan"), "c": {"x": 1}, "d": [1, 2], "e": True}]
    df = store.read_table(store.append_records(rows, tmp_path, "t"), "t")
    assert pd.isna(df["a"][0]) and pd.isna(df["b"][0])
    assert df["c"][0] == '{"x":1}' and df["d"][0] == "[1,2]" and df["e"][0]


def test_read_table_from_several_stores(tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    store.append_records(_rows(1), a, "t")
    store.append_records(_rows(2), b, "t")
    df = store.read_table([a, b, tmp_path / "missing"], "t")
    assert len(df) == 3 and set(df["store"]) == {str(a), str(b)}


def test_unwritable_store_is_a_clear_error(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(store.VitbenchError):
        store.append_records(_rows(1), blocker / "results", "t")
