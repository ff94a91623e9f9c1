"""The training-cost report: training columns beside timm's training benchmark, training memory
against tokens (eager against fused attention, with their fits), step time against batch size;
a store without training steps renders as before, a row without a mode being inference."""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_checks import image_links, markdown_tables
from matplotlib.figure import Figure
from report_fixtures import (
    assert_close,
    env,
    fit_rows,
    profile_rows,
    report_recording_panels,
    train_step_row,
    write,
    write_profile_store,
    write_train_cost_store,
)

from vitbench.report import build_report, plots

TINY = "vit_tiny_patch16_224"


def _table_with(text: str, column: str):
    return next(t for t in markdown_tables(text) if column in t.columns)


@pytest.fixture
def mixed(tmp_path, monkeypatch) -> tuple[str, dict, Path]:
    """The report of a store with inference and training rows, the plotted series by (figure,
    panel title, label), and the report's folder."""
    store = write_train_cost_store(tmp_path / "s")
    return report_recording_panels(store, tmp_path / "out", monkeypatch)


def test_benchmark_table_has_training_columns_beside_timms_training_benchmark(mixed) -> None:
    text, _, _ = mixed
    bench = _table_with(text, "published GMACs").set_index("model")
    vit = bench.loc["vit_base_patch16_224"]
    assert vit["throughput (img/s)"] == "12.5"  # the inference columns as before
    best = train_step_row("vit_base_patch16_224", 224, 4, True, 17.58e9)  # faster than batch 1
    assert_close(vit["train throughput (img/s)"], best["throughput_sps"], rel=2e-3)
    assert_close(vit["step time (ms)"], best["latency_median_ms"], rel=2e-3)
    assert vit["train measured at"] == "batch 4, fp32, adamw"
    assert_close(vit["train GMACs"], 2.9 * 17.58)
    assert_close(vit["train peak memory (MiB)"], best["train_memory_peak_bytes"] / 2**20, 5e-3)
    assert vit["published train throughput (img/s)"] == "391"
    assert vit["published train setting"] == "RTX 3090 AMP SGD batch 192 torch 1.12"
    ratio = best["throughput_sps"] / 390.86
    assert_close(vit["train measured / published"], ratio, rel=2e-3)
    assert vit["source"] == "[1], [2]"
    assert "2. timm results/benchmark-train-amp-nchw-pt112-cu113-rtx3090.csv" in text
    swin = bench.loc["swin_tiny_patch4_window7_224"]  # published, not trained here
    assert swin["train throughput (img/s)"] == "-" and swin["train measured at"] == "-"
    assert swin["published train throughput (img/s)"] == "647"
    assert "timm times SGD by default" in text


def test_training_memory_against_tokens_draws_the_eager_and_fused_fits(mixed) -> None:
    text, drawn, out = mixed
    assert "## Training cost" in text
    assert (out / "figures/train_memory_vs_tokens.png").is_file()
    assert "figures/train_memory_vs_tokens.png" in image_links(text)
    saved = "train_memory_vs_tokens", "saved for backward"
    eager, fused = (drawn[(*saved, f"{TINY} b2 {a}")] for a in ("eager", "fused"))
    assert eager.exponent == pytest.approx(1.4) and fused.exponent == pytest.approx(0.95)
    assert list(eager.x) == [17, 65, 145, 257] and eager.note.startswith("k=1.40±")
    assert eager.y[0] == pytest.approx(2 * 40 * 17**1.4 / 2**10)  # plotted in MiB
    peak = drawn[("train_memory_vs_tokens", "training peak memory", f"{TINY} b2 eager")]
    assert peak.exponent is None and peak.note == "poor fit"  # weights dominate: not a law
    # the training fits are listed with their attention, apart from the inference fits
    fits = _table_with(text, "attention").query("metric == 'train_memory_saved_bytes'")
    assert fits.set_index("attention")["exponent"].to_dict() == {"eager": "1.400", "fused": "0.950"}
    assert f"- {TINY} b2 fused, training peak memory: poor fit" in text


def test_training_rows_stay_out_of_the_inference_sections(mixed, tmp_path) -> None:
    text, drawn, _ = mixed
    labels = {label for figure, _, label in drawn if figure == "cost_vs_tokens"}
    assert labels == {"vit_small_patch16_224 b1"}
    alone = build_report([write_profile_store(tmp_path / "a")], tmp_path / "a_out").read_text()

    def inference(t: str) -> str:
        return t.split("## Cost against")[1].split("## Utilization")[0]

    assert inference(text) == inference(alone)


def test_step_time_against_batch_size(mixed) -> None:
    text, drawn, out = mixed
    label = "vit_base_patch16_224 197 tok fused"
    step = drawn[("train_step_vs_batch", "step time (median)", label)]
    assert list(step.x) == [1, 4] and step.y[1] == pytest.approx(0.5 * 197**1.1 * 4**0.8)
    assert (out / "figures/train_step_vs_batch.png").is_file()
    assert "figures/train_step_vs_batch.png" in image_links(text)


def test_training_points_split_memory_and_utilization_names_the_mode(mixed) -> None:
    text, _, _ = mixed
    points = _table_with(text, "saved for backward (MiB)")
    row = points[(points.model == TINY) & (points.attention == "eager")].iloc[0]
    assert row["optimizer"] == "adamw"
    assert_close(row["weights (MiB)"], 5_717_416 * 4 / 2**20, rel=2e-3)
    assert_close(row["optimizer state (MiB)"], 2 * 5_717_416 * 4 / 2**20, rel=2e-3)
    assert (
        "Memory measured: the peak by profiler-memory-events; weights, gradients and optimizer "
        "state by tensor sizes; activations saved for backward by saved-tensor hooks." in text
    )
    utilization = _table_with(text, "MFU")
    assert set(utilization["mode"]) == {"infer", "train"}
    assert "counts its forward and backward MACs" in text


def test_a_row_without_mode_reads_as_inference(tmp_path) -> None:
    """The same rows, stored with ``mode`` infer and with no mode at all, render alike."""
    texts = []
    for name, extra in (("old", {}), ("new", {"mode": "infer"})):
        path = tmp_path / name
        write([{**r, **extra} for r in profile_rows()], path, "profile", "run-a", env())
        write([{**f, **extra} for f in fit_rows()], path, "profile_fit", "run-a", env())
        text = build_report([path], tmp_path / f"{name}_out").read_text()
        texts.append(text.replace(str(path), "STORE"))
    assert texts[0] == texts[1]
    assert "## Training cost" not in texts[0] and "train GMACs" not in texts[0]
    assert "mode" not in _table_with(texts[0], "MFU").columns


def test_of_two_lines_ending_close_together_the_higher_writes_its_note_above() -> None:
    eager = plots.Series("eager", [5, 65], [1.5, 20.0], exponent=1.02, prefactor=0.3, note="k=1.02")
    fused = plots.Series("fused", [5, 65], [1.5, 18.9], exponent=1.0, prefactor=0.3, note="k=1.00")
    assert plots._top_note([fused, eager]) is eager
    assert plots._top_note([eager]) is None  # one line: its note below its end, as ever
    ax = Figure().subplots()
    plots._draw_series(ax, eager, "C0", above=True)
    plots._draw_series(ax, fused, "C1")
    assert [t.get_va() for t in ax.texts] == ["bottom", "top"]
