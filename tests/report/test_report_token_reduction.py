"""The token-reduction report: accuracy against throughput from `vitbench train --tome/--prune`,
speedup against r per batch size from `vitbench profile --tome`, attention distance per layer
from `vitbench analyze attention --tome`; reduced points stay out of the plain sections."""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_checks import image_links, markdown_tables
from report_fixtures import (
    assert_close,
    attention_rows,
    env,
    profile_rows,
    report_recording_panels,
    write,
)
from test_report_imports import FORBIDDEN, REPORT, loaded_by

from vitbench.report import build_report, plots

MODEL = "vit_scratch_digits"
#: (reduction fields, test accuracy, images/s, MACs, tokens per block) as `vitbench train` writes
POINTS = [
    ({"reduction": "none"}, 0.95, 1000.0, 2.0e6, "17,17,17,17"),
    (
        {"reduction": "tome", "tome_r": 2, "tome_schedule": "constant"},
        0.94,
        1300.0,
        1.6e6,
        "17,15,13,11",
    ),
    (
        {"reduction": "tome", "tome_r": 4, "tome_schedule": "constant"},
        0.90,
        1700.0,
        1.2e6,
        "17,13,9,5",
    ),
    ({"reduction": "prune", "prune_keep": 0.7}, 0.92, 1400.0, 1.5e6, "17,17,13,13"),
]
#: latency in ms of the digits model at (batch size, r); r = 0 is the plain model
LATENCY = {(1, 0): 2.0, (1, 2): 1.9, (1, 4): 1.8, (16, 0): 20.0, (16, 2): 15.0, (16, 4): 10.0}


def token_reduction_rows() -> list[dict]:
    return [
        {
            "model": MODEL,
            "dataset": "digits",
            "point": i,
            **fields,
            "test_acc": acc,
            "test_loss": 1 - acc,
            "test_images": 360,
            "batch_size": 256,
            "images_per_s": ips,
            "macs": macs,
            "tokens_per_layer": tokens,
        }
        for i, (fields, acc, ips, macs, tokens) in enumerate(POINTS)
    ]


def reduced_profile_rows() -> list[dict]:
    """One `vitbench profile --tome 0,2,4` run at batch 1 and 16, as its records read."""
    rows = []
    for point, ((batch, r), ms) in enumerate(LATENCY.items()):
        reduction = {"reduction": "tome", "tome_r": r, "tome_schedule": "constant"} if r else {}
        rows.append(
            {
                "model": MODEL,
                "img_size": 8,
                "batch_size": batch,
                "point": point,
                "mode": "infer",
                "tokens": 17,
                "reduction": "none",
                **reduction,
                "tokens_per_layer": f"17,{17 - r},{17 - 2 * r},{17 - 3 * r}",
                "latency_median_ms": ms,
                "throughput_sps": 1000 * batch / ms,
                "status": "ok",
                "precision": "fp32",
            }
        )
    return rows


def merged_attention_rows() -> list[dict]:
    """The merged model's analysis: heads look half as far as the plain model's fixture."""
    rows = attention_rows(MODEL, "checkpoint")
    merged = {"reduction": "tome", "tome_r": 2, "tome_schedule": "constant"}
    return [{**r, **merged, "mean_distance_px": r["mean_distance_px"] / 2} for r in rows]


def write_token_reduction_store(path: Path) -> Path:
    write(token_reduction_rows(), path, "token_reduction", "train-tr", env())
    write(reduced_profile_rows(), path, "profile", "prof-tr", env())
    write(attention_rows(MODEL, "checkpoint"), path, "attention", "att-plain", env())
    write(merged_attention_rows(), path, "attention", "att-tome", env())
    return path


@pytest.fixture
def report(tmp_path, monkeypatch) -> tuple[str, dict, Path]:
    """The report of a store with every kind of token-reduction row, the plotted series by
    (figure, panel title, label), and the report's folder."""
    store = write_token_reduction_store(tmp_path / "s")
    return report_recording_panels(store, tmp_path / "out", monkeypatch)


def _table_with(text: str, column: str):
    return next(t for t in markdown_tables(text) if column in t.columns)


def test_accuracy_table_and_curves_read_the_tested_points(report) -> None:
    text, drawn, _ = report
    assert "## Token merging and pruning" in text
    table = _table_with(text, "change (points)").set_index("point")
    assert list(table.index) == ["plain", "r=2", "r=4", "keep 0.7"]
    plain = POINTS[0]
    for name, (_, acc, ips, macs, tokens) in zip(table.index, POINTS, strict=True):
        row = table.loc[name]
        assert_close(row["test accuracy"].rstrip("%"), 100 * acc)
        assert_close(row["images/s"], ips)
        assert_close(row["MMACs"], macs / 1e6)  # a model under 0.1 GMACs
        assert row["tokens per block"] == tokens
        assert_close(row["speedup"], ips / plain[2], rel=5e-3)
        assert float(row["change (points)"]) == pytest.approx(100 * (acc - plain[1]), abs=0.05)
    figure, title = "token_reduction_accuracy", f"{MODEL} on digits"
    tome, prune = (drawn[(figure, title, m)] for m in ("merging (ToMe)", "pruning (EViT)"))
    assert _points(tome) == [(1000.0, 95.0), (1300.0, 94.0), (1700.0, 90.0)]
    assert _points(prune) == [(1000.0, 95.0), (1400.0, 92.0)]  # both through the plain point


def _points(series: plots.Series) -> list[tuple[float, float]]:
    return sorted(zip(series.x, series.y, strict=True))


def test_speedup_is_the_ratio_of_stored_latencies_per_batch_size(report) -> None:
    text, drawn, _ = report
    table = _table_with(text, "plain latency (ms)")
    assert len(table) == 4  # r = 2 and 4 at two batch sizes; the plain points are the base
    for _, row in table.iterrows():
        batch, r = int(row["batch"]), int(row["point"].removeprefix("r="))
        assert_close(row["speedup"], LATENCY[(batch, 0)] / LATENCY[(batch, r)], rel=5e-3)
        assert_close(row["plain latency (ms)"], LATENCY[(batch, 0)])
        assert_close(row["latency (ms)"], LATENCY[(batch, r)])
    title = f"{MODEL}, 8 px, infer"
    for batch in (1, 16):
        line = drawn[("token_merging_speedup", title, f"batch {batch}")]
        assert list(line.x) == [0, 2, 4]
        assert list(line.y) == pytest.approx(
            [LATENCY[(batch, 0)] / LATENCY[(batch, r)] for r in (0, 2, 4)]
        )


def test_attention_distance_per_layer_is_the_mean_over_heads_at_each_r(report) -> None:
    _, drawn, _ = report
    title = f"{MODEL} (checkpoint)"
    for label, rows in (
        ("plain", attention_rows(MODEL, "checkpoint")),
        ("r=2", merged_attention_rows()),
    ):
        line = drawn[("token_merging_attention_distance", title, label)]
        layers = sorted({r["layer"] for r in rows})
        means = [
            sum(r["mean_distance_px"] for r in rows if r["layer"] == layer)
            / sum(r["layer"] == layer for r in rows)
            for layer in layers
        ]
        assert list(line.x) == layers and list(line.y) == pytest.approx(means)


def test_the_figures_are_written_and_linked(report) -> None:
    text, _, out = report
    links = image_links(text)
    for name in ("token_reduction_accuracy", "token_merging_speedup"):
        assert f"figures/{name}.png" in links
    assert "figures/token_merging_attention_distance.png" in links
    assert all((out / link).is_file() for link in links)


def test_reduced_points_stay_out_of_the_plain_sections(report) -> None:
    text, drawn, _ = report
    # the attention section summarises the plain analysis only
    summary = _table_with(text, "layers x heads")
    assert list(summary["analysis"]) == [f"{MODEL} (checkpoint)"]
    # throughput against batch size: the plain model's two points, not the merged ones
    line = next(s for (fig, _, _), s in drawn.items() if fig == "throughput_vs_batch")
    assert list(line.y) == pytest.approx([1000 / LATENCY[(1, 0)], 16000 / LATENCY[(16, 0)]])


def test_a_store_without_token_reduction_has_no_such_section(profile_store, tmp_path) -> None:
    text = build_report([profile_store], tmp_path / "out").read_text()
    assert "Token merging" not in text and "token_merging" not in text


@pytest.mark.slow
def test_the_section_loads_no_torch(tmp_path) -> None:
    store = write_token_reduction_store(tmp_path / "s")
    write(profile_rows(), store, "profile", "run-a", env())
    code = REPORT.format(store=str(store), out=str(tmp_path / "out"))
    assert loaded_by(code, FORBIDDEN) == []
    assert "## Token merging and pruning" in (tmp_path / "out/report.md").read_text()
