"""The training section: the run's final numbers, learning curves and confusion matrix."""

from __future__ import annotations

from report_fixtures import image_links, markdown_tables, write_train_store

from vitbench.report import build_report


def test_training_section(tmp_path) -> None:
    report = build_report([write_train_store(tmp_path / "results")], tmp_path / "out")
    text = report.read_text()
    assert "## Training" in text and "## Attention" not in text
    runs = next(t for t in markdown_tables(text) if "test accuracy" in t.columns)
    run = runs.iloc[0]
    assert run["test accuracy"] == "90.0%"  # 54 of 60 test images
    assert run["best val accuracy"] == "85.0%"
    assert run["input (px)"] == "8 x 8 x 1 ch"
    assert run["train / val / test images"] == "1,257 / 180 / 60"
    assert run["params (M)"] == "0.136"
    assert run["most confused (true→predicted)"] == "2→1 (3), 0→2 (2)"
    links = image_links(text)
    assert {"figures/training_curves.png", "figures/confusion_matrix.png"} <= set(links)
    assert all((report.parent / link).is_file() for link in links)
