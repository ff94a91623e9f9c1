"""The training section: the run's final numbers, learning curves and confusion matrix."""

from __future__ import annotations

from markdown_checks import image_links, markdown_tables
from report_fixtures import env, sweep_rows, write, write_train_store

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


def test_sweep_section_cells_effects_and_plot(tmp_path) -> None:
    path = tmp_path / "results"
    write(sweep_rows(), path, "sweep", "sweep-1", env())
    report = build_report([path], tmp_path / "out")
    text = report.read_text()
    assert "## Sweep: accuracy against cost" in text
    tables = markdown_tables(text)
    cells = next(t for t in tables if "embed_dim" in t.columns)
    assert cells.columns.tolist()[:4] == ["model", "data", "embed_dim", "depth"]
    assert cells["test accuracy"].tolist() == ["90.0%", "92.0%", "94.0%", "96.0%"]
    assert "config_hash" not in cells.columns and "cell_run_id" not in cells.columns
    effect = next(t for t in tables if "hyperparameter" in t.columns)
    dim64 = effect[(effect.hyperparameter == "embed_dim") & (effect.value == "64")].iloc[0]
    assert dim64["mean test accuracy"] == "95.0%" and dim64["cells"] == "2"
    assert "figures/sweep_accuracy_vs_gmacs_1.png" in image_links(text)
    assert (report.parent / "figures/sweep_accuracy_vs_gmacs_1.png").is_file()
