"""`vitbench export`: every table to files that pandas reads back equal; nothing overwritten."""

from __future__ import annotations

import pandas as pd
import pytest

from vitbench.cli import main
from vitbench.store import Recorder, open_store

ENV = {"env_torch": "2.15.0", "env_device": "test CPU"}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(32))


@pytest.fixture
def filled(tmp_path):
    st = open_store(tmp_path / "results")
    rec = Recorder(st, ENV, run_id="r1")
    rec.write("profile", [{"model": "m", "point": i, "macs": 17_583_000_000 + i} for i in range(3)])
    rec.write("train_runs", [{"model": "m", "confusion": [[1, 0], [0, 1]], "noisy": True}])
    rec.write("figures", [{"name": "m_rollout", "media_type": "image/png", "data": PNG}])
    st.close()
    return tmp_path / "results"


def _export(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(["export", *args])
    return exit_.value.code


@pytest.mark.parametrize(
    ("fmt", "read"),
    [
        ("csv", pd.read_csv),
        ("json", lambda p: pd.read_json(p, lines=True)),
        ("parquet", pd.read_parquet),
    ],
)
def test_each_format_reads_back_equal(filled, tmp_path, fmt, read) -> None:
    out = tmp_path / "files"
    assert _export(str(filled), "--format", fmt, "--out", str(out)) == 0
    suffix = {"csv": "csv", "json": "jsonl", "parquet": "parquet"}[fmt]
    profile = read(out / f"profile.{suffix}")
    assert profile["macs"].tolist() == [17_583_000_000, 17_583_000_001, 17_583_000_002]
    assert (profile["env_device"] == "test CPU").all()
    assert read(out / f"train_runs.{suffix}")["confusion"][0] == "[[1,0],[0,1]]"
    assert (out / "figures" / "r1" / "m_rollout.png").read_bytes() == PNG


def test_one_table_and_no_overwrite(filled, tmp_path, capsys) -> None:
    out = tmp_path / "files"
    assert _export(str(filled), "--table", "profile", "--out", str(out)) == 0
    assert sorted(p.name for p in out.iterdir()) == ["profile.csv"]
    assert capsys.readouterr().err.splitlines() == [f"1 file(s) written to {out}"]
    before = (out / "profile.csv").read_bytes()
    assert _export(str(filled), "--table", "profile", "--out", str(out)) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: export would overwrite {out / 'profile.csv'}: choose another directory"]
    assert (out / "profile.csv").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--format", "xlsx"],
            "error: unknown export format 'xlsx'; choose from csv, parquet, json",
        ),
        (["--table", "nosuch"], "error: unknown table 'nosuch'; tables: profile, profile_fit, "),
    ],
)
def test_bad_choices_are_one_line(filled, tmp_path, capsys, args, message) -> None:
    assert _export(str(filled), *args, "--out", str(tmp_path / "files")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)
    assert not (tmp_path / "files").exists()


def test_missing_store_is_one_line(tmp_path, capsys) -> None:
    assert _export(str(tmp_path / "nowhere"), "--out", str(tmp_path / "files")) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"error: results store not found: {tmp_path / 'nowhere'}"]
