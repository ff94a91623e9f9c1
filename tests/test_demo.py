"""`vitbench demo --quick`: every step runs through the library and the report has them all."""

from __future__ import annotations

import pytest
from markdown_checks import image_links, markdown_tables

from vitbench.cli import main
from vitbench.demo import PRIOR_S, Progress, Step
from vitbench.store import DB_FILE


@pytest.mark.slow
def test_quick_demo_end_to_end(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--quick", "--out", str(out)])
    assert exit_.value.code == 0
    report = out / "report.md"
    assert capsys.readouterr().out.strip() == str(report)
    text = report.read_text()
    for section in ("Benchmark table", "Cost against the number", "Attention", "Training"):
        assert f"## {section}" in text
    # the training-cost step: ViT-Ti's training memory over tokens, eager and fused attention
    assert "## Training cost" in text and "figures/train_memory_vs_tokens.png" in text
    train_fits = next(t for t in markdown_tables(text) if "attention" in t.columns)
    assert set(train_fits["attention"]) == {"eager", "fused"}
    # the merging sweep on the trained digits model: tested at each point, timed, analysed
    assert "## Token merging and pruning" in text
    for figure in ("token_reduction_accuracy", "token_merging_speedup"):
        assert f"figures/{figure}.png" in image_links(text)
    assert "figures/token_merging_attention_distance.png" in image_links(text)
    tested = next(t for t in markdown_tables(text) if "change (points)" in t.columns)
    assert list(tested["point"]) == ["plain", "r=2", "r=3", "keep 0.7"]
    timed = next(t for t in markdown_tables(text) if "plain latency (ms)" in t.columns)
    assert sorted(set(timed["batch"])) == ["1", "64"] and set(timed["point"]) == {"r=2", "r=3"}
    bench = next(t for t in markdown_tables(text) if "published GMACs" in t.columns)
    assert set(bench["model"]) == {"vit_base_patch16_224", "vit_tiny_patch16_224"}
    # MAE on crops of the sample photographs, and its encoder's attention on such crops
    assert "## Pre-training (MAE)" in text
    assert any(link.startswith("figures/mae_reconstruction_") for link in image_links(text))
    heads = next(t for t in markdown_tables(text) if "analysis" in t.columns)
    assert heads["analysis"].str.contains("checkpoint").sum() == 2  # digits model, MAE encoder
    assert not heads["analysis"].str.contains("random").any()
    # the sentences through a random-init BERT: heatmaps of its heads, the strongest pairs
    assert "## Attention on text" in text
    assert any(link.startswith("figures/text_attention_") for link in image_links(text))
    assert all((out / link).is_file() for link in image_links(text))
    # a second run into the same store is refused rather than mixed in
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--quick", "--out", str(out)])
    assert exit_.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {out / DB_FILE} already holds results (profile, ")
    assert line.endswith("the demo writes a fresh store: remove it or choose another --out")


def test_time_left_follows_the_pace_of_finished_steps() -> None:
    steps = [Step(str(i), 30.0, lambda note: None) for i in range(3)]
    progress = Progress(steps)
    assert progress.left_s == pytest.approx(90.0, abs=0.5)
    progress.started -= 90.0  # the first step took three times its estimate
    progress.finish_step(90.0)
    pace = (90.0 + PRIOR_S) / (30.0 + PRIOR_S)
    assert progress.left_s == pytest.approx(60.0 * pace, abs=0.5)
    assert 60.0 < progress.left_s < 180.0  # slower than planned, damped by the prior
