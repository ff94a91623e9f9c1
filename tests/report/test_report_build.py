"""`build_report` from small stored fixtures: sections, numbers, links, environments."""

from __future__ import annotations

import pytest
from markdown_checks import image_links, markdown_tables
from report_fixtures import PNG_1x1, assert_close, env, profile_rows, write, write_full_store

from vitbench import store
from vitbench.errors import VitbenchError
from vitbench.report import build_report


def _table_with(text: str, column: str):
    return next(t for t in markdown_tables(text) if column in t.columns)


def test_benchmark_table_against_published(profile_store, tmp_path) -> None:
    text = build_report([profile_store], tmp_path / "out").read_text()
    table = _table_with(text, "published GMACs").set_index("model")
    vit = table.loc["vit_base_patch16_224"]
    assert_close(vit["params (M)"], 86.567656, rel=1e-4)
    assert vit["published params (M)"] == "86.57"  # timm's table
    assert_close(vit["GMACs"], 17.58, rel=1e-3)
    assert vit["throughput (img/s)"] == "12.5" and vit["measured at"] == "batch 8, fp32"
    assert_close(vit["measured / published"], 12.5 / 2787.15, rel=1e-2)
    assert vit["top-1 (%, published)"] == "85.11"
    swin = table.loc["swin_tiny_patch4_window7_224"]
    assert swin["Δ params"] == f"{100 * (28.288354 / 28.29 - 1):+.2f}%"
    # the sweep model has no published row at 32-128 px: not in the benchmark table
    assert "vit_small_patch16_224" not in table.index
    papers = _table_with(text, "paper params (M)")
    assert set(papers["model"]) == {"vit_base_patch16_224", "swin_tiny_patch4_window7_224"}
    assert "Dosovitskiy et al. 2021" in text and "Liu et al. 2021" in text  # sources listed


def test_scaling_section_reads_stored_fits(profile_store, tmp_path) -> None:
    text = build_report([profile_store], tmp_path / "out").read_text()
    assert "## Cost against the number of tokens" in text
    fits = _table_with(text, "exponent").set_index("metric")
    assert fits.loc["latency_median_ms", "exponent"] == "1.100"
    points = _table_with(text, "tokens")
    assert points["tokens"].tolist() == ["5", "17", "65"]


def test_every_linked_image_exists_and_tables_parse(profile_store, tmp_path) -> None:
    report = build_report([profile_store], tmp_path / "out")
    text = report.read_text()
    links = image_links(text)
    assert "figures/cost_vs_tokens.png" in links and "figures/throughput_vs_batch.png" in links
    for link in links:
        assert not link.startswith("/"), link  # relative, so the report can be moved
        png = report.parent / link
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", link
    assert len(markdown_tables(text)) >= 4


def test_one_environment_gives_no_warning(profile_store, tmp_path) -> None:
    text = build_report([profile_store], tmp_path / "out").read_text()
    assert "Warning" not in text
    assert len(_table_with(text, "stores")) == 1


def test_two_environments_are_named_and_warned_about(profile_store, tmp_path) -> None:
    gpu = tmp_path / "gpu_results"
    write(profile_rows()[:2], gpu, "profile", "run-g", env("NVIDIA H100 80GB HBM3", 16))
    text = build_report([profile_store, gpu], tmp_path / "out").read_text()
    envs = _table_with(text, "stores").set_index("env")
    assert envs.loc["E1", "device"] == "Test CPU 2 cores"
    assert envs.loc["E2", "device"] == "NVIDIA H100 80GB HBM3"
    assert envs.loc["E2", "rows"] == "profile 2"
    assert "these results come from 2 environments that differ in device, threads" in text
    bench = _table_with(text, "published GMACs")
    assert bench[bench.model == "vit_base_patch16_224"]["env"].tolist() == ["E1", "E2"]
    assert "The benchmark table compares rows from 2 environments (E1, E2)" in text


def test_different_precisions_are_warned_about(tmp_path) -> None:
    rows = profile_rows()[:2]
    path = tmp_path / "r"
    write(rows, path, "profile", "a", env())
    write([{**r, "precision": "bf16"} for r in rows], path, "profile", "b", env())
    text = build_report([path], tmp_path / "out").read_text()
    assert "rows at different precisions (bf16, fp32)" in text


def test_empty_or_missing_store_is_a_clear_error(tmp_path) -> None:
    store.open_store(tmp_path / "empty").close()  # a database with no rows
    with pytest.raises(VitbenchError, match="no results in"):
        build_report([tmp_path / "empty"], tmp_path / "out")
    (tmp_path / "bare").mkdir()
    with pytest.raises(VitbenchError, match="no results store in .*bare: it holds no vitbench.db"):
        build_report([tmp_path / "bare"], tmp_path / "out")
    with pytest.raises(VitbenchError, match="not found"):
        build_report([tmp_path / "nowhere"], tmp_path / "out")


def test_csv_store_of_version_0_1_is_to_be_imported(tmp_path) -> None:
    old = tmp_path / "example"
    old.mkdir()
    (old / "profile.csv").write_text("schema_version,run_id,model\n1,a,vit_base_patch16_224\n")
    with pytest.raises(VitbenchError, match=f"import them once with `vitbench import {old}`"):
        build_report([old], tmp_path / "out")


def test_a_store_listed_twice_is_read_once(profile_store, tmp_path) -> None:
    db = profile_store / "vitbench.db"
    targets = [profile_store, db, f"sqlite:///{db}", profile_store]
    text = build_report(targets, tmp_path / "out").read_text()
    envs = _table_with(text, "stores")
    assert len(envs) == 1 and envs.loc[0, "rows"] == "profile 7, profile_fit 3"
    assert envs.loc[0, "stores"] == str(profile_store)  # named as first given
    points = _table_with(text, "tokens")
    assert points["tokens"].tolist() == ["5", "17", "65"]
    assert text.count(f"`{profile_store}`") == 1


def test_sequence_length_sweep_without_benchmark_rows(tmp_path) -> None:
    rows = [
        {"model": "scratch_bert_base", "seq_len": n, "batch_size": 1, "tokens": n,
         "params": 109_482_240, "macs": 85_000_000 * n + 1_500 * n * n, "status": "ok"}
        for n in (128, 256, 512)
    ]  # fmt: skip
    path = tmp_path / "results"
    write(rows, path, "profile", "bert", env())
    text = build_report([path], tmp_path / "out").read_text()
    assert "## Benchmark table" not in text and "## Cost against the number of tokens" in text
    points = _table_with(text, "sequence length")
    assert points["sequence length"].tolist() == ["128", "256", "512"]
    assert "image (px)" not in points.columns  # a column with no value is left out


def test_every_section_from_one_full_store(tmp_path) -> None:
    report = build_report([write_full_store(tmp_path / "results")], tmp_path / "out")
    text = report.read_text()
    for section in (
        "Benchmark table",
        "Cost against the number",
        "Throughput against batch",
        "Utilization",
        "Training cost",
        "Attention",
        "Training",
        "Sweep: accuracy against cost",
    ):
        assert f"## {section}" in text, section  # fmt: skip
    links = image_links(text)
    rollouts = [link for link in links if "rollout_" in link]
    assert rollouts == [
        "figures/rollout_vit_small_patch16_224_att-1.png",
        "figures/rollout_scratch_vit_tiny_att-2.png",
    ]
    assert all((report.parent / link).read_bytes() == PNG_1x1 for link in rollouts)
    assert all((report.parent / link).is_file() for link in links)


def test_flags_and_empty_text_read_alike_across_stores(tmp_path) -> None:
    cpu = {**env(), "env_cuda": "", "env_tf32_matmul": ""}
    gpu = {**env("NVIDIA H100 80GB HBM3", 16), "env_device_type": "cuda", "env_cuda": "12.4",
           "env_tf32_matmul": True}  # fmt: skip
    mixed, pure = tmp_path / "mixed", tmp_path / "pure"
    write(profile_rows()[:1], mixed, "profile", "c", cpu)
    write(profile_rows()[:1], mixed, "profile", "g", gpu)  # tf32 column holds "" and 1: text
    write(profile_rows()[1:2], pure, "profile", "g2", gpu)  # tf32 column holds a bool
    envs = _table_with(build_report([mixed, pure], tmp_path / "out").read_text(), "stores")
    envs = envs.set_index("env")
    assert len(envs) == 2 and envs.loc["E1", "CUDA"] == "-" and envs.loc["E1", "TF32 matmul"] == "-"
    assert envs.loc["E2", "TF32 matmul"] == "on" and envs.loc["E2", "rows"] == "profile 2"
    assert envs.loc["E2", "stores"] == f"{mixed}, {pure}"
