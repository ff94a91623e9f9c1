"""Sweeps: grid parsing, cells as configs, one stored row per cell, resuming, effect table."""

from __future__ import annotations

import os

import pytest

from vitbench.errors import VitbenchError
from vitbench.measure.closed_form import ViTShape, vit_macs
from vitbench.store import Claim, claim, open_store
from vitbench.train import TrainConfig
from vitbench.train.defaults import DEFAULT_MODEL_KWARGS
from vitbench.train.sweep import (
    STORED,
    TRAINING,
    cell_config,
    cells_of,
    parse_grid,
    sweep,
)


def test_grid_parsing_and_cells() -> None:
    grid = parse_grid(["embed_dim=32,64", "lr=1e-3,2e-3", "qkv_bias=false"])
    assert grid == {"embed_dim": [32, 64], "lr": [1e-3, 2e-3], "qkv_bias": [False]}
    cells = cells_of(grid)
    assert len(cells) == 4 and cells[1] == {"embed_dim": 32, "lr": 2e-3, "qkv_bias": False}
    cfg = cell_config(TrainConfig(model_kwargs={"depth": 2}), cells[1])
    assert cfg.lr == 2e-3  # a recipe field
    assert cfg.model_kwargs == {"depth": 2, "embed_dim": 32, "qkv_bias": False}  # model keywords
    for bad in (["embed_dim"], ["test_acc=1,2"], ["depth=2", "depth=4"], []):
        with pytest.raises(VitbenchError):
            parse_grid(bad)
    with pytest.raises(VitbenchError, match="epochs"):
        cell_config(TrainConfig(), {"epochs": 0})


@pytest.mark.slow
def test_sweep_stores_one_row_per_cell_and_resumes(tmp_path) -> None:
    store = open_store(tmp_path)
    base = TrainConfig(epochs=1, subset=64, batch_size=32, threads=1)
    grid = {"depth": [1, 2]}
    seen: list[tuple[str, str]] = []
    first = sweep(
        base, grid, store=store, on_cell=lambda i, n, label, what: seen.append((label, what))
    )
    assert seen == [("depth=1", TRAINING), ("depth=2", TRAINING)]
    rows = store.read("sweep")
    assert list(rows.depth) == [1, 2] and set(rows.run_id) == {first.sweep_id}
    kw = DEFAULT_MODEL_KWARGS
    for depth, gmacs in zip(rows.depth, rows.gmacs, strict=True):
        shape = ViTShape(img_size=8, patch_size=kw["patch_size"], in_chans=1, num_classes=10,
                         embed_dim=kw["embed_dim"], depth=depth, num_heads=kw["num_heads"],
                         mlp_ratio=kw["mlp_ratio"])  # fmt: skip
        assert gmacs == pytest.approx(vit_macs(shape) / 1e9, rel=1e-12)
    runs = store.read("train_runs")  # each cell is a training run
    assert list(runs.run_id) == list(rows.cell_run_id)
    assert (first.plot.parent / "effects.csv").is_file() and first.plot.is_file()
    assert first.plot.parent == tmp_path / "runs" / first.sweep_id
    # run again with one more value: only the new cell trains
    seen.clear()
    again = sweep(base, {"depth": [1, 2, 3]}, store=store,
                  on_cell=lambda i, n, label, what: seen.append((label, what)))  # fmt: skip
    assert seen == [("depth=1", STORED), ("depth=2", STORED), ("depth=3", TRAINING)]
    assert len(store.read("sweep")) == 3 and len(store.read("train_runs")) == 3
    assert [c["test_acc"] for c in again.cells[:2]] == pytest.approx(list(rows.test_acc))


def test_a_cell_a_live_process_holds_is_left_to_it(tmp_path) -> None:
    store = open_store(tmp_path)
    base = TrainConfig(epochs=1, subset=64, batch_size=32, threads=1,
                       model_kwargs=dict(embed_dim=16, num_heads=2))  # fmt: skip
    grid = {"depth": [1, 2]}
    held = claim(store, "sweep_cell", cell_config(base, {"depth": 1}).fingerprint())
    assert isinstance(held, Claim)  # as if another sweep were training it
    seen: list[str] = []
    result = sweep(base, grid, store=store, on_cell=lambda i, n, label, what: seen.append(what))
    assert seen[0].startswith(f"claimed by process {os.getpid()} on ") and seen[1] == TRAINING
    assert list(result.claimed) == ["depth=1"] and [c["depth"] for c in result.cells] == [2]
    assert [e["value"] for e in result.effects] == [2]  # not in the effects
    assert len(store.read("train_runs")) == 1 and len(store.read("sweep")) == 1
