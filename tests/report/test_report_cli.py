"""`vitbench report` on the command line."""

from __future__ import annotations

import pytest
from report_fixtures import image_links

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
