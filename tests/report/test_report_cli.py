"""`vitbench report` on the command line."""

from __future__ import annotations

import pytest
from markdown_checks import image_links

from vitbench.cli import main


def test_report_command_writes_next_to_the_store(profile_store, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(profile_store)])
    assert exit_.value.code == 0
    report = profile_store / "report.md"
    assert capsys.readouterr().out.strip() == str(report)
    assert all((profile_store / link).exists() for link in image_links(report.read_text()))


def test_report_command_out_dir_and_missing_store(profile_store, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(profile_store), "--out", str(tmp_path / "site")])
    assert exit_.value.code == 0 and (tmp_path / "site" / "report.md").exists()
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(tmp_path / "nowhere")])
    assert exit_.value.code == 2
    assert "results store not found" in capsys.readouterr().err


def test_report_command_reads_a_database_url(profile_store, capsys) -> None:
    url = f"sqlite:///{profile_store / 'vitbench.db'}"
    with pytest.raises(SystemExit) as exit_:
        main(["report", url])  # the report goes beside the SQLite file
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == str(profile_store / "report.md")


def test_report_command_on_csv_results_of_version_0_1(tmp_path, capsys) -> None:
    (tmp_path / "profile.csv").write_text("schema_version,run_id\n1,a\n")
    with pytest.raises(SystemExit) as exit_:
        main(["report", str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"vitbench import {tmp_path}" in err and len(err.strip().splitlines()) == 1
