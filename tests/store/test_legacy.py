"""Importing 0.1 CSV stores: spreadsheet dialects read right, malformed files refused untouched."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from vitbench.cli import main
from vitbench.store import open_store, read_table
from vitbench.store.legacy import LegacyFormatError, import_legacy, read_legacy

HEADER = ["schema_version", "run_id", "timestamp", "model", "img_size", "macs", "note", "noisy"]
T0 = "2026-11-23T09:52:40+00:00"
ROWS = [
    [
        "1",
        "r1",
        T0,
        "vit_base_patch16_224",
        "224",
        "17583000000",
        "",
        "false",
    ],
    ["1", "r1", T0, "deit_tiny", "224", "1256000000", "a;b,c", "true"],
]


def _write(path: Path, delimiter: str = ",", bom: bool = False, rows=ROWS) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    path.mkdir(parents=True, exist_ok=True)
    (path / "profile.csv").write_text(("\ufeff" if bom else "") + buf.getvalue())
    return path


@pytest.mark.parametrize(
    ("delimiter", "bom"), [(",", False), (",", True), (";", False), ("\t", True)]
)
def test_spreadsheet_dialects_read_as_the_original(tmp_path, delimiter, bom) -> None:
    src = _write(tmp_path / "old", delimiter, bom)
    with open_store(tmp_path / "db") as st:
        assert import_legacy(src, st) == {"profile": 2}
    df = read_table(tmp_path / "db", "profile")
    # pandas reading the plain comma file is the independent truth
    truth = pd.read_csv(_write(tmp_path / "plain") / "profile.csv")
    assert df["model"].tolist() == truth["model"].tolist()
    assert df["macs"].tolist() == truth["macs"].tolist() == [17583000000, 1256000000]
    assert df["noisy"].tolist() == [False, True]
    assert df["note"].iloc[1] == "a;b,c" and pd.isna(df["note"].iloc[0])
    assert df["point"].tolist() == [0, 1]  # 0.1 rows numbered per run in file order


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace(",deit_tiny", ',"deit_tiny', 1), "line"),  # a stray quote
        (lambda t: t.rstrip("\n") + ",extra\n", "fields"),  # a row with an extra column
        (lambda t: t.replace("note", "model", 1), "repeated column"),
    ],
)
def test_malformed_files_are_refused_and_nothing_is_written(
    tmp_path, capsys, edit, message
) -> None:
    src = _write(tmp_path / "old")
    table = src / "profile.csv"
    table.write_text(edit(table.read_text()))
    before = table.read_bytes()
    with pytest.raises(LegacyFormatError, match=message) as info:
        read_legacy(src)
    with pytest.raises(SystemExit) as exit_:
        main(["import", str(src)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {info.value}"]  # the same one line
    assert table.read_bytes() == before
    assert not (src / "vitbench.db").exists()  # checked before a database is created


def test_importing_twice_stores_each_row_once(tmp_path) -> None:
    src = _write(tmp_path / "old")
    for _ in range(2):
        with pytest.raises(SystemExit) as exit_:
            main(["import", str(src)])
        assert exit_.value.code == 0
    assert len(read_table(src, "profile")) == 2


def test_rollout_overlays_become_figures_named_in_their_rows(tmp_path) -> None:
    src = tmp_path / "old"
    src.mkdir()
    header = "schema_version,run_id,timestamp,model,layer,head,mean_distance_px\n"
    rows = "".join(f"1,r9,t,scratch/vit,{i // 2},{i % 2},{10.5 + i}\n" for i in range(4))
    (src / "attention.csv").write_text(header + rows)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
    (src / "plots" / "r9").mkdir(parents=True)
    (src / "plots" / "r9" / "scratch_vit_rollout.png").write_bytes(png)
    with open_store(src) as st:
        import_legacy(src, st)
        figures = st.read("figures")
    assert read_table(src, "attention")["rollout_figure"].tolist() == ["scratch_vit_rollout"] * 4
    assert figures["name"].tolist() == ["scratch_vit_rollout"] and figures["data"][0] == png


def test_a_directory_without_tables_is_one_line(tmp_path) -> None:
    with pytest.raises(LegacyFormatError, match="no vitbench CSV tables"):
        read_legacy(tmp_path)
