"""Fits in the report: only good fits are drawn as laws; exact lines, poor fits and points left
out are said so, in the plot, the fit table and the text."""

from __future__ import annotations

import numpy as np
import pytest
from markdown_checks import markdown_tables
from matplotlib.figure import Figure
from report_fixtures import env, write

from vitbench.measure.scaling import fit_scaling
from vitbench.report import build_report, fits, plots

WOBBLE = (1.0, 1.35, 0.74, 1.35, 1.0)  # multiplicative scatter: the exponent stays loose


def _point(model: str, tokens: int, latency: float, noisy: bool = False) -> dict:
    return {
        "model": model,
        "batch_size": 1,
        "tokens": tokens,
        "img_size": tokens,  # one shape per point; the value is not read
        "macs": 1000 * tokens,
        "latency_median_ms": latency,
        "latency_noisy": noisy,
        "status": "ok",
        "precision": "fp32",
    }


def sweep_rows() -> list[dict]:
    """A clean 4-point sweep with one noisy point, a 2-point sweep, and a poorly fitting one."""
    rows = [_point("clean", t, 0.01 * t**1.5) for t in (16, 64, 256)]
    rows.append(_point("clean", 1024, 500.0, noisy=True))  # 0.01 * 1024^1.5 would be 328
    rows += [_point("pair", t, 0.02 * t) for t in (16, 64)]
    tokens = np.geomspace(16, 1024, 5).round().astype(int).tolist()
    rows += [_point("loose", t, 0.01 * t**1.5 * w) for t, w in zip(tokens, WOBBLE, strict=True)]
    return rows


@pytest.fixture
def report(tmp_path, monkeypatch) -> tuple[str, dict]:
    """The report's text and the plotted series, by (panel title, label)."""
    rows = sweep_rows()
    write(rows, tmp_path / "s", "profile", "run-f", env())
    write(fit_scaling(rows), tmp_path / "s", "profile_fit", "run-f", env())
    drawn: dict = {}
    real = plots.panels

    def recording(items, path, ncols=None):
        drawn.update({(p.title, s.label): s for p in items for s in p.series})
        return real(items, path, ncols)

    monkeypatch.setattr(plots, "panels", recording)
    text = build_report([tmp_path / "s"], tmp_path / "out").read_text()
    return text, drawn


def _fit_table(text: str):
    table = next(t for t in markdown_tables(text) if "95% interval" in t.columns)
    return table[table.metric == "latency_median_ms"].set_index("model")


def test_only_good_fits_are_drawn_as_laws(report) -> None:
    _, drawn = report
    clean, pair, loose = (
        drawn[("latency (median)", f"{m} b1")] for m in ("clean", "pair", "loose")
    )
    assert clean.exponent == pytest.approx(1.5) and clean.note.startswith("k=1.50±")
    assert pair.exponent is None and pair.note == "exact line, 2 points"
    assert loose.exponent is None and loose.note == "poor fit"
    # the left-out point is still shown, hollow, and the law covers only the points it used
    assert 1024 in clean.x and clean.left_out == [1024] and clean.fitted == (16, 256)


def test_fit_table_shows_exact_lines_intervals_and_ratings(report) -> None:
    text, _ = report
    table = _fit_table(text)
    assert table.loc["pair", "R² (log-log)"] == "exact line (2 points)"
    assert table.loc["pair", "95% interval"] == "-" and table.loc["pair", "fit"] == "exact"
    assert table.loc["clean", "exponent"] == "1.500" and table.loc["clean", "fit"] == "good"
    assert table.loc["clean", "95% interval"] == "1.500 to 1.500"  # exact power law, 3 points
    assert (table.loc["clean", "points"], table.loc["clean", "left out"]) == ("3", "1")
    assert table.loc["clean", "tokens to"] == "256"
    assert table.loc["loose", "fit"] == "poor"
    low, high = (float(v) for v in table.loc["loose", "95% interval"].split(" to "))
    assert low < 1.5 < high and high - low > 0.2


def test_text_names_poor_fits_and_points_left_out(report) -> None:
    text, _ = report
    assert (
        "- clean b1, latency (median): left out 1 point flagged latency_noisy (tokens 1024)" in text
    )
    assert "- pair b1, latency (median): 2 points: an exact line, no R² or interval" in text
    assert "- loose b1, latency (median): poor fit: 95% interval ±" in text
    points = next(t for t in markdown_tables(text) if "noisy timing" in t.columns)
    flagged = points[points["noisy timing"] == "yes"]
    assert (flagged.model.tolist(), flagged.tokens.tolist()) == (["clean"], ["1,024"])


def test_a_law_is_drawn_dashed_and_other_series_joined_with_their_note() -> None:
    ax = Figure().subplots()
    law = plots.Series("a", [16, 64, 256], [1, 4, 16], exponent=1.0, prefactor=1 / 16, note="k")
    plots._draw_series(ax, law, "C0")
    markers, fitted = ax.lines  # markers only (no joining line), then the law, dashed
    assert markers.get_linewidth() == 0 and fitted.get_linestyle() == "--"
    assert np.allclose(fitted.get_ydata(), fitted.get_xdata() / 16)
    ax = Figure().subplots()
    plots._draw_series(ax, plots.Series("b", [16, 64], [1, 4], note="exact line, 2 points"), "C1")
    assert len(ax.lines) == 1 and ax.lines[0].get_linewidth() == 1  # points joined, no law
    assert [t.get_text() for t in ax.texts] == ["exact line, 2 points"]


def test_points_left_out_are_hollow_and_the_law_spans_the_fitted_range() -> None:
    ax = Figure().subplots()
    s = plots.Series("a", [16, 64, 256], [1, 4, 99], 1.0, 1 / 16, fitted=(16, 64), left_out=[256])
    plots._draw_series(ax, s, "C0")
    _, hollow, fitted = ax.lines
    assert hollow.get_xdata().tolist() == [256] and hollow.get_markerfacecolor() == "white"
    assert (fitted.get_xdata().min(), fitted.get_xdata().max()) == pytest.approx((16, 64))


def test_a_fit_stored_before_fits_were_rated_is_not_drawn_as_a_law() -> None:
    old = {"exponent": 1.1, "prefactor": 0.2, "r2": 0.93, "n_points": 6}  # no quality column
    assert not fits.is_law(old) and fits.plot_note(old) is None
    assert fits.is_law({**old, "quality": "good"})
