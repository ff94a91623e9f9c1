"""The attention section: per-analysis summary, figures, and the saved rollout overlays."""

from __future__ import annotations

from markdown_checks import image_links, markdown_tables
from report_fixtures import write_attention_store

from vitbench.report import build_report


def test_attention_section_numbers_and_figures(tmp_path) -> None:
    path = write_attention_store(tmp_path / "results")
    report = build_report([path], tmp_path / "out")
    text = report.read_text()
    assert "## Attention" in text and "## Benchmark table" not in text
    summary = next(t for t in markdown_tables(text) if "analysis" in t.columns)
    summary = summary.set_index("analysis")
    assert list(summary.index) == [
        "vit_small_patch16_224 (random)",
        "scratch_vit_tiny (checkpoint)",
    ]
    row = summary.loc["vit_small_patch16_224 (random)"]
    assert row["layers x heads"] == "3 x 2"
    assert row["distance, first layer (px)"] == "10.5"
    assert row["distance, last layer (px)"] == "30.5"
    assert row["head distances (px)"] == "10.0 to 31.0"
    assert row["normalised entropy"] == "0.600"
    assert row["images"] == "8 from digits" and row["input (px)"] == "32x32"
    trained = summary.loc["scratch_vit_tiny (checkpoint)"]
    assert trained["weights"] == "digits/model.safetensors"
    links = image_links(text)
    for name in ("attention_distance", "attention_entropy", "head_importance", "head_clusters"):
        assert f"figures/{name}.png" in links
    # the rollout saved by the analysis run is copied next to the report
    assert "figures/rollout_scratch_vit_tiny_att-2.png" in links
    assert all((report.parent / link).is_file() for link in links)
