"""Where a report goes: a report.md vitbench did not write is kept, stale figures are removed."""

from __future__ import annotations

import pytest
from markdown_checks import image_links

from vitbench.errors import VitbenchError
from vitbench.report import build_report
from vitbench.report.build import MARKER


def test_a_report_md_vitbench_did_not_write_is_not_overwritten(profile_store, tmp_path) -> None:
    foreign = tmp_path / "site" / "report.md"
    foreign.parent.mkdir()
    foreign.write_text("# My notes\n")
    with pytest.raises(VitbenchError, match="not written by vitbench report"):
        build_report([profile_store], tmp_path / "site")
    assert foreign.read_text() == "# My notes\n"
    assert not (tmp_path / "site" / "figures").exists()


def test_rewriting_a_report_removes_the_figures_it_no_longer_links(profile_store, tmp_path) -> None:
    report = build_report([profile_store], tmp_path / "site")
    assert report.read_text().startswith(f"<!-- {MARKER} -->")
    stale = tmp_path / "site" / "figures" / "old_plot.png"
    stale.write_bytes(b"png")
    kept = tmp_path / "site" / "figures" / "mine.png"  # not linked by vitbench: left alone
    kept.write_bytes(b"png")
    report.write_text(report.read_text() + "\n![old](figures/old_plot.png)\n")
    build_report([profile_store], tmp_path / "site")
    assert not stale.exists() and kept.exists()
    assert all((report.parent / link).exists() for link in image_links(report.read_text()))
