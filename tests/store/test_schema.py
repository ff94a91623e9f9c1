"""Tables, natural keys, cells, and columns that appear or widen as records change."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from vitbench.store import LEADING_COLUMNS, SCHEMA_VERSION, TABLES, Recorder, Store
from vitbench.store.schema import cells, kind_of, to_cell, wider


def _rec(model: str, **extra: object) -> dict[str, object]:
    return {"run_id": "r1", "model": model, **extra}


# -- cells -------------------------------------------------------------------------------------


def test_cells_of_plain_values() -> None:
    assert to_cell(None) is None and to_cell(float("nan")) is None
    assert to_cell(17_583_000_000) == 17_583_000_000 and to_cell(True) is True
    assert to_cell(b"\x00\x01") == b"\x00\x01" and to_cell("é") == "é"


def test_containers_become_json_that_loads_back() -> None:
    value = {"a": [1, 2.5, None, "x"], "b": {"c": True}, "t": [0.1, -3]}
    assert json.loads(to_cell(value)) == value
    assert json.loads(to_cell((1, 2))) == [1, 2]
    assert json.loads(to_cell([np.int64(3), np.float32(0.5)])) == [3, 0.5]


def test_numpy_scalars_become_python_values() -> None:
    assert to_cell(np.int64(2**40)) == 2**40 and type(to_cell(np.int64(1))) is int
    assert to_cell(np.float32(0.5)) == 0.5 and to_cell(np.float64("nan")) is None
    assert to_cell(np.bool_(True)) is True


def test_kinds_widen_towards_text() -> None:
    assert [kind_of(v) for v in (True, 1, 1.5, "x", b"x")] == [
        "bool",
        "int",
        "float",
        "text",
        "blob",
    ]
    assert wider("int", "float") == "float" and wider("float", "int") == "float"
    assert wider("bool", "int") == "int" and wider("int", "text") == "text"
    assert wider("blob", "blob") == "blob" and wider("blob", "int") == "text"


def test_record_key_ignores_field_order_and_non_key_fields() -> None:
    spec = TABLES["profile"]
    a = {"run_id": "r", "model": "m", "img_size": 224, "macs": 1}
    b = {"macs": 2, "img_size": 224.0 * 1, "model": "m", "run_id": "r"}
    assert spec.record_key(a) == spec.record_key({k: a[k] for k in reversed(a)})
    assert spec.record_key(a) != spec.record_key({**a, "model": "n"})
    assert json.loads(spec.record_key(b))[:3] == ["r", "m", 224.0]


def test_missing_values_are_left_out_of_a_row() -> None:
    (row,) = cells(TABLES["train_runs"], [{"run_id": "r", "a": None, "b": float("nan"), "c": 1}])
    assert row == {"run_id": "r", "c": 1, "record_key": '["r"]'}


def test_every_table_is_keyed_on_its_run_or_config() -> None:
    for name, spec in TABLES.items():
        assert spec.key and ("run_id" in spec.key or name == "sweep"), name
    assert TABLES["sweep"].key == ("config_hash",)


# -- columns through the database --------------------------------------------------------------


def test_new_fields_add_columns_and_keep_earlier_rows(opened: Store, sql) -> None:
    opened.write("profile", [_rec("a", macs=10, lat=1.25), _rec("b", macs=20, lat=2.5)])
    before = sql("SELECT model, macs, lat FROM profile ORDER BY id")
    opened.write("profile", [_rec("c", macs=30, lat=3.0, fused=True, env_torch="2.4")])
    df = opened.read("profile")
    assert sql("SELECT model, macs, lat FROM profile ORDER BY id")[:2] == before
    assert df["fused"].tolist()[:2] == [None, None] or df["fused"][:2].isna().all()
    assert df["env_torch"][:2].isna().all() and df["env_torch"][2] == "2.4"
    assert bool(df["fused"][2]) is True


def test_int_column_takes_a_non_integral_float_exactly(opened: Store) -> None:
    opened.write("profile", [_rec("a", v=17_583_000_000), _rec("b", v=2)])
    opened.write("profile", [_rec("c", v=0.1), _rec("d", v=1 / 3)])
    assert opened.read("profile")["v"].tolist() == [17_583_000_000, 2, 0.1, 1 / 3]


def test_int_column_widens_in_the_same_batch(opened: Store) -> None:
    opened.write("profile", [_rec("a", v=1), _rec("b", v=2.75)])
    assert opened.read("profile")["v"].tolist() == [1, 2.75]


def test_numeric_column_takes_a_string(opened: Store) -> None:
    opened.write("profile", [_rec("a", v=1.5), _rec("b", v=7)])
    opened.write("profile", [_rec("c", v="n/a")])
    values = opened.read("profile")["v"].tolist()
    assert values[2] == "n/a"
    assert [float(v) for v in values[:2]] == [1.5, 7.0]  # numbers survive, as text on PostgreSQL


def test_bool_column_takes_numbers_and_text(opened: Store) -> None:
    opened.write("profile", [_rec("a", flag=True), _rec("b", flag=False)])
    opened.write("profile", [_rec("c", flag=5)])
    opened.write("profile", [_rec("d", flag=2.5)])
    opened.write("profile", [_rec("e", flag="maybe")])
    values = opened.read("profile")["flag"].tolist()
    assert values[2:] == ["5", "2.5", "maybe"] or values[2:] == [5, 2.5, "maybe"]
    assert [str(v).lower() for v in values[:2]] in (["true", "false"], ["1", "0"])


def test_bool_column_takes_an_int_keeping_it(opened: Store) -> None:
    opened.write("profile", [_rec("a", flag=True)])
    opened.write("profile", [_rec("b", flag=12)])
    values = opened.read("profile")["flag"].tolist()
    assert values[1] == 12 and values[0] in (True, 1)


def test_huge_integers_are_kept_exactly(opened: Store) -> None:
    big = 2**70 + 1
    opened.write("profile", [_rec("a", v=big)])
    assert int(opened.read("profile")["v"][0]) == big


def test_blob_column_refuses_nothing(opened: Store) -> None:
    opened.write("figures", [{"run_id": "r", "name": "a", "data": b"\x89PNG"}])
    (row,) = opened.rows("figures")
    assert row["data"] == b"\x89PNG"


# -- the recorder ------------------------------------------------------------------------------


def test_recorder_stamps_and_stores(opened: Store, tmp_path) -> None:
    rec = Recorder(opened, env={"env_host": "h", "env_threads": 4}, run_id="run-1")
    rows = rec.write("profile", [{"model": "m", "img_size": 224, "env_host": "mine"}])
    assert rows[0]["run_id"] == "run-1" and rows[0]["schema_version"] == SCHEMA_VERSION
    png = tmp_path / "f.png"
    png.write_bytes(b"\x89PNG-data")
    assert rec.write_figure("fig", png) == "fig"
    df = opened.read("profile")
    assert list(df.columns[: len(LEADING_COLUMNS)]) == list(LEADING_COLUMNS)
    assert df["env_host"][0] == "mine" and df["env_threads"][0] == 4
    assert pd.Timestamp(df["timestamp"][0]).tzinfo is not None
    assert opened.rows("figures")[0]["data"] == b"\x89PNG-data"


def test_recorder_without_store_only_stamps() -> None:
    rec = Recorder(None, run_id="x")
    assert rec.write("profile", [{"a": 1}])[0]["run_id"] == "x"
    assert rec.write_figure("f", "/nonexistent.png") is None


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinities_round_trip(opened: Store, value: float) -> None:
    opened.write("profile", [_rec("a", v=value)])
    assert opened.read("profile")["v"][0] == value


def test_rows_carry_the_environment_they_came_from(opened: Store) -> None:
    from vitbench.environment import environment

    Recorder(opened, env=environment("cpu")).write("profile", [{"model": "m"}])
    (row,) = opened.rows("profile")
    for key in ("env_torch", "env_timm", "env_vitbench", "env_device", "env_threads"):
        assert row[key] not in (None, ""), key
    assert row["env_host"] == __import__("socket").gethostname()
