"""The database: typed round trip, idempotent and atomic writes, opening checks, concurrency."""

from __future__ import annotations

import json
import math
import os
import socket
import stat
from pathlib import Path

import pandas as pd
import pytest
from store_processes import run_sql, run_together

from vitbench.store import DB_FILE, STORE_ENV, Store, StoreError, open_store, resolve_url

BIG = 17_583_000_000  # > 2**31: the MACs of a large model


def _record(model: str = "vit", **extra: object) -> dict[str, object]:
    return {"run_id": "r1", "model": model, "img_size": 224, "batch_size": 1, **extra}


# -- round trip --------------------------------------------------------------------------------


def test_round_trip_keeps_types_and_order(opened: Store) -> None:
    nested = {"depth": 12, "blocks": [1, 2.5, "x", None], "ok": True}
    records = [
        _record("b", macs=BIG, ratio=0.125, fused=True, note=None, lat=float("nan"), cfg=nested),
        _record("a", macs=3, ratio=-1e-300, fused=False, note="n", lat=1.5, cfg=[1, [2]]),
    ]
    assert opened.write("profile", records) == 2
    df = opened.read("profile")
    assert list(df["model"]) == ["b", "a"]  # write order, not sorted
    assert "id" not in df.columns and "record_key" not in df.columns
    assert df["macs"].tolist() == [BIG, 3] and pd.api.types.is_integer_dtype(df["macs"])
    assert df["ratio"].tolist() == [0.125, -1e-300]
    assert df["fused"].tolist() == [True, False]
    assert pd.isna(df["note"][0]) and df["note"][1] == "n"
    assert pd.isna(df["lat"][0]) and df["lat"][1] == 1.5  # NaN went in as NULL
    assert json.loads(df["cfg"][0]) == nested and json.loads(df["cfg"][1]) == [1, [2]]


def test_nan_is_stored_as_null(opened: Store, sql) -> None:
    opened.write("profile", [_record(lat=1.0), _record("m2", lat=float("nan"))])
    assert sql("SELECT lat FROM profile ORDER BY id") == [(1.0,), (None,)]


def test_figure_bytes_round_trip(opened: Store) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    opened.write(
        "figures", [{"run_id": "r1", "name": "fig", "media_type": "image/png", "data": png}]
    )
    (row,) = opened.rows("figures")
    assert row["data"] == png and row["name"] == "fig"


def test_rows_load_with_pandas_read_sql(opened: Store) -> None:
    opened.write("profile", [_record(macs=BIG, ratio=0.5), _record("m2", macs=1, ratio=2.0)])
    df = pd.read_sql("SELECT model, macs, ratio FROM profile ORDER BY id", opened.engine)
    assert df.to_dict("records") == [
        {"model": "vit", "macs": BIG, "ratio": 0.5},
        {"model": "m2", "macs": 1, "ratio": 2.0},
    ]


def test_read_filters_with_where(opened: Store) -> None:
    opened.write("profile", [_record("a"), _record("b"), _record("c")])
    assert opened.read("profile", {"model": "b"})["model"].tolist() == ["b"]
    assert opened.counts()["profile"] == 3


def test_unknown_table_is_refused(opened: Store) -> None:
    with pytest.raises(ValueError, match="unknown table"):
        opened.write("nope", [{"a": 1}])


# -- idempotence -------------------------------------------------------------------------------


def test_same_records_twice_are_stored_once(opened: Store) -> None:
    records = [_record("a", macs=1), _record("b", macs=2)]
    assert opened.write("profile", records) == 2
    assert opened.write("profile", records) == 0
    assert opened.write("profile", [dict(reversed(records[0].items()))]) == 0  # key order
    assert len(opened.read("profile")) == 2


def test_other_runs_are_stored_separately(opened: Store) -> None:
    opened.write("profile", [_record("a")])
    opened.write("profile", [{**_record("a"), "run_id": "r2"}])
    assert opened.read("profile")["run_id"].tolist() == ["r1", "r2"]


def test_record_missing_a_key_field_is_still_deduplicated(opened: Store) -> None:
    rec = {"run_id": "r1", "model": "a", "img_size": None, "macs": 5}  # patch_size etc. absent
    opened.write("profile", [rec])
    opened.write("profile", [rec, {**rec, "img_size": float("nan")}])
    assert len(opened.read("profile")) == 1


def test_first_write_of_a_key_wins(opened: Store) -> None:
    opened.write("train_runs", [{"run_id": "r", "acc": 0.5}])
    opened.write("train_runs", [{"run_id": "r", "acc": 0.9}])
    assert opened.read("train_runs")["acc"].tolist() == [0.5]


def test_numbers_and_bools_in_a_text_column_read_the_same_on_every_backend(opened: Store) -> None:
    opened.write("profile", [{"run_id": "r", "point": 0, "note": "first"}])
    rows = [{"run_id": "r", "point": i, "note": v} for i, v in enumerate((3, True, 2.5), 1)]
    opened.write("profile", rows)
    assert opened.read("profile")["note"].tolist() == ["first", "3", "true", "2.5"]


# -- one transaction per write -----------------------------------------------------------------

_SQLITE_TRIGGER = """
CREATE TRIGGER refuse_bad BEFORE INSERT ON profile WHEN NEW.model = 'bad'
BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END
"""
_PG_FUNCTION = """
CREATE FUNCTION refuse_bad() RETURNS trigger AS $$
BEGIN
  IF NEW.model = 'bad' THEN RAISE EXCEPTION 'refused by trigger'; END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql
"""
_PG_TRIGGER = (
    "CREATE TRIGGER refuse_bad BEFORE INSERT ON profile FOR EACH ROW EXECUTE FUNCTION refuse_bad()"
)


def _refuse_model_bad(url: str) -> None:
    """A trigger in the database that rejects rows whose model is 'bad'."""
    if url.startswith("sqlite"):
        run_sql(url, _SQLITE_TRIGGER)
    else:
        run_sql(url, _PG_FUNCTION)
        run_sql(url, _PG_TRIGGER)


def test_failed_batch_leaves_no_row(opened: Store, store_url: str) -> None:
    opened.write("profile", [_record("kept", macs=1)])
    _refuse_model_bad(store_url)
    batch = [_record("good", macs=2, extra=1.5), _record("bad", macs=3), _record("c")]
    with pytest.raises(StoreError, match="refused by trigger") as info:
        opened.write("profile", batch)
    assert "\n" not in str(info.value)
    assert opened.read("profile")["model"].tolist() == ["kept"]
    assert "extra" not in opened.read("profile").columns  # the new column went too
    # the same store object can still write the batch's fields afterwards
    opened.write("profile", [_record("good", macs=2, extra=1.5)])
    assert opened.read("profile")["extra"].tolist()[-1] == 1.5


def test_failed_widening_is_not_remembered(opened: Store, store_url: str) -> None:
    opened.write("profile", [_record("kept", macs=1)])
    _refuse_model_bad(store_url)
    with pytest.raises(StoreError):
        opened.write("profile", [_record("x", macs=2.5), _record("bad")])
    opened.write("profile", [_record("y", macs=2.5)])
    assert opened.read("profile")["macs"].tolist() == [1, 2.5]


def test_text_with_nul_is_rejected_whole_on_postgresql(pg_url: str) -> None:
    with open_store(pg_url) as st:
        with pytest.raises(StoreError, match="NUL") as info:
            st.write("profile", [_record("a"), _record("b", note="x\x00y")])
        assert "\n" not in str(info.value)
        assert st.counts()["profile"] == 0


# -- opening -----------------------------------------------------------------------------------


def _refuses(path: Path, match: str, create: bool = True) -> None:
    """Opening ``path`` fails with one line naming it, and leaves the file's bytes as they were."""
    before = path.read_bytes()
    with pytest.raises(StoreError, match=match) as info:
        open_store(path, create=create)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert path.read_bytes() == before


def test_random_bytes_are_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(os.urandom(4096))
    _refuses(path, "not an SQLite database")


def test_csv_renamed_to_db_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "profile.db"
    path.write_text("schema_version,run_id,model\n1,r,vit\n")
    _refuses(path, "not an SQLite database")


def test_other_sqlite_database_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    run_sql(f"sqlite:///{path}", "CREATE TABLE songs (title TEXT)")
    run_sql(f"sqlite:///{path}", "INSERT INTO songs VALUES ('a')")
    _refuses(path, "not a vitbench store")
    assert run_sql(f"sqlite:///{path}", "SELECT name FROM sqlite_master") == [("songs",)]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    open_store(path).close()
    run_sql(
        f"sqlite:///{path}", "UPDATE vitbench_meta SET value = '999' WHERE key = 'schema_version'"
    )
    _refuses(path, "schema 999")


def test_newer_schema_is_refused_on_postgresql(pg_url: str) -> None:
    open_store(pg_url).close()
    run_sql(pg_url, "UPDATE vitbench_meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema 999"):
        open_store(pg_url)


def test_unwritable_location_fails_at_open(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    with pytest.raises(StoreError, match="cannot create") as info:
        open_store(blocker / "results")
    assert "\n" not in str(info.value)
    assert blocker.read_text() == "a file, not a directory"


def test_missing_store_without_create_fails(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not found"):
        open_store(tmp_path / "results", create=False)
    assert not (tmp_path / "results").exists()


def test_empty_postgresql_database_without_create_fails(pg_url: str) -> None:
    with pytest.raises(StoreError, match="holds no vitbench results"):
        open_store(pg_url, create=False)


def test_closed_port_fails_in_one_line() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError) as info:
        open_store(f"postgresql://nobody@127.0.0.1:{port}/results")
    message = str(info.value)
    assert "\n" not in message and str(port) in message


def test_environment_variable_names_the_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "shared"))
    with open_store() as st:
        st.write("profile", [_record()])
    assert (tmp_path / "shared" / DB_FILE).is_file()
    with open_store(tmp_path / "shared" / DB_FILE, create=False) as st:
        assert st.counts()["profile"] == 1


def test_directory_resolves_to_its_database_file(tmp_path: Path) -> None:
    assert resolve_url(tmp_path) == f"sqlite:///{tmp_path}/{DB_FILE}"
    assert resolve_url(tmp_path / "new") == f"sqlite:///{tmp_path}/new/{DB_FILE}"
    assert resolve_url(tmp_path / "x.db") == f"sqlite:///{tmp_path}/x.db"
    assert resolve_url("postgresql://h/db") == "postgresql://h/db"
    with open_store(tmp_path) as st:
        assert st.artifacts == tmp_path and st.label == str(tmp_path / DB_FILE)


# -- the file on disk --------------------------------------------------------------------------


def test_file_mode_survives_writes(tmp_path: Path) -> None:
    path = tmp_path / DB_FILE
    open_store(tmp_path).close()
    path.chmod(0o644)
    with open_store(tmp_path) as st:
        for i in range(3):
            st.write("profile", [_record(f"m{i}")])
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_symlinked_database_survives_writes(tmp_path: Path) -> None:
    real = tmp_path / "disk" / "real.db"
    real.parent.mkdir()
    open_store(real).close()
    (tmp_path / "results").mkdir()
    link = tmp_path / "results" / DB_FILE
    link.symlink_to(real)
    with open_store(tmp_path / "results") as st:
        st.write("profile", [_record("a"), _record("b")])
    assert link.is_symlink() and link.resolve() == real.resolve()
    with open_store(real, create=False) as st:
        assert st.read("profile")["model"].tolist() == ["a", "b"]


# -- concurrency -------------------------------------------------------------------------------

_WRITER_SETUP = "from vitbench.store import open_store\nst = open_store(args['url'])"
_WRITER_WORK = """
for i in range(50):
    st.write("profile", [{"run_id": f"p{args['n']}", "model": "m", "point": i, "v": i * 0.5}])
print("ok")
"""


def test_eight_processes_write_at_once(store_url: str, tmp_path: Path) -> None:
    """Into a store none of them has created yet: they also race to create its tables."""
    outs = run_together(tmp_path, 8, _WRITER_SETUP, _WRITER_WORK, {"url": store_url})
    assert outs == ["ok"] * 8
    with open_store(store_url, create=False) as st:
        df = st.read("profile")
    assert len(df) == 400
    assert df.groupby("run_id")["point"].apply(sorted).tolist() == [list(range(50))] * 8


def test_float_precision_is_double(opened: Store) -> None:
    value = math.pi * 1e-7
    opened.write("profile", [_record(v=value)])
    assert opened.read("profile")["v"][0] == value


def test_unsupported_url_is_refused() -> None:
    with pytest.raises(StoreError, match="not a database vitbench can use"):
        open_store("nosuchdb://host/db")
    with pytest.raises(StoreError, match="not a database URL"):
        Store("::")


def test_a_store_from_before_a_table_existed_reads_it_as_empty_and_gains_it_on_write(
    tmp_path: Path,
) -> None:
    import sqlite3

    with open_store(tmp_path) as store:
        store.write("profile", [_record()])
    with sqlite3.connect(tmp_path / DB_FILE) as conn:  # as a store of an earlier version
        conn.execute("DROP TABLE token_reduction")
    with open_store(tmp_path, create=False) as old:
        assert old.read("token_reduction").empty and old.rows("token_reduction") == []
        assert old.counts()["token_reduction"] == 0 and old.counts()["profile"] == 1
    with open_store(tmp_path) as store:
        store.write("token_reduction", [{"run_id": "r1", "point": 0, "test_acc": 0.9}])
        assert store.rows("token_reduction")[0]["test_acc"] == 0.9
