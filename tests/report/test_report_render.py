"""Figures rendered at the end on every core: the same PNGs as one after the other, errors kept."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from vitbench.report import plots


def _figure(i: int) -> Figure:
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1, 2], [0, i, 2 * i])
    return fig


def test_parallel_render_writes_the_same_pngs_as_serial(tmp_path) -> None:
    serial = [plots._save(_figure(i), tmp_path / "serial" / f"{i}.png") for i in range(5)]
    with plots.deferred():
        parallel = [plots._save(_figure(i), tmp_path / "parallel" / f"{i}.png") for i in range(5)]
    for a, b in zip(serial, parallel, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_a_figure_that_cannot_be_written_fails_in_the_parent(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError), plots.deferred():
        plots._save(_figure(1), tmp_path / "ok.png")
        plots._pending.append((_figure(2), blocker / "bad.png"))  # a child's share fails
    assert (tmp_path / "ok.png").is_file()
