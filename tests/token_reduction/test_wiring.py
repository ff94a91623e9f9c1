"""Token merging and pruning wired into profile, analyze attention and train's evaluation.

Each record is checked against something outside the wiring: the MACs of the model transformed
by hand, the closed form of the plain ViT, the tokens that pre-hooks on the blocks see, the
positions of merged tokens worked out by hand, and train's own test of the plain model.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from tiny_vits import tokens_seen

from vitbench.attention import AttentionOptions, analyze_attention
from vitbench.attention.geometry import place_merged
from vitbench.errors import VitbenchError
from vitbench.measure.closed_form import ViTShape, vit_macs
from vitbench.measure.flops import count_macs
from vitbench.measure.profile import ProfileOptions, profile
from vitbench.store import open_store, read_table
from vitbench.token_reduction import TokenReduction, apply_token_reduction
from vitbench.train import TrainConfig, train
from vitbench.zoo import ModelSpec, create_model

VIT = "vit_tiny_patch16_224"
KW = {"depth": 4}
IMG = 96  # 36 patches and a class token: r = 4 fits each of the 4 blocks (37, 33, 29, 25)
SHAPE = ViTShape(img_size=IMG, patch_size=16, embed_dim=192, depth=4, num_heads=3)
COUNTS = dict(metrics=frozenset({"params", "flops"}), img_sizes=(IMG,), model_kwargs=KW)
POINTS = [None, TokenReduction(tome_r=2), TokenReduction(tome_r=4), TokenReduction(prune_keep=0.5)]
#: TrainConfig().fingerprint() before token reduction existed: stores keep finding their cells
DEFAULT_FINGERPRINT = "62b1e347096f"
TRAIN = dict(epochs=1, subset=96, batch_size=32, threads=1)


def by_hand(reduction: TokenReduction | None, device: str = "meta") -> torch.nn.Module:
    """The plain model, built and then transformed here (not through a spec)."""
    torch.manual_seed(0)
    model = create_model(ModelSpec(VIT, img_size=IMG, kwargs=KW), device=device)
    if reduction is not None:
        apply_token_reduction(model, reduction)
    return model


def test_profile_points_count_the_model_transformed_by_hand() -> None:
    opts = ProfileOptions(**COUNTS, tome=(0, 2, 4), prune=(0.5,))
    rows = profile([VIT], opts).records
    assert [r["reduction"] for r in rows] == ["none", "tome", "tome", "prune"]
    assert [(r.get("tome_r"), r.get("prune_keep")) for r in rows] == [
        (None, None), (2, None), (4, None), (None, 0.5)
    ]  # fmt: skip
    meta = torch.empty(1, 3, IMG, IMG, device="meta")
    x = torch.randn(2, 3, IMG, IMG)
    for row, reduction in zip(rows, POINTS, strict=True):
        assert row["macs"] == count_macs(by_hand(reduction), (meta,)).macs
        seen = tokens_seen(by_hand(reduction, "cpu"), x)
        assert row["tokens_per_layer"] == ",".join(map(str, seen))
        assert row["tokens"] == 37  # entering the first attention layer, as for any model
    assert rows[0]["macs"] == vit_macs(SHAPE) > rows[1]["macs"] > rows[2]["macs"]
    plain = profile([VIT], ProfileOptions(**COUNTS)).records
    assert [r["macs"] for r in plain] == [rows[0]["macs"]]
    assert "reduction" not in plain[0]  # a run without points keeps its rows as they were


def test_fits_are_those_of_the_plain_points() -> None:
    sizes = dict(COUNTS, img_sizes=(64, 96, 128))
    with_points = profile([VIT], ProfileOptions(**sizes, tome=(2,)))
    without = profile([VIT], ProfileOptions(**sizes))
    assert len(with_points.records) == 6
    fit = {f["metric"]: f for f in with_points.fits}["macs"]
    plain_fit = {f["metric"]: f for f in without.fits}["macs"]
    assert fit["n_points"] == 3 and fit["exponent"] == plain_fit["exponent"]


def test_timed_points_run_the_reduced_model() -> None:
    opts = ProfileOptions(
        metrics=frozenset({"params", "latency"}), img_sizes=(IMG,), model_kwargs=KW,
        tome=(4,), budget_s=0.2, rounds=1, warmup=0, min_runs=2, threads=1,
    )  # fmt: skip
    rows = profile([VIT], opts).records
    assert [r["reduction"] for r in rows] == ["none", "tome"]
    assert all(r["status"] == "ok" and r["latency_median_ms"] > 0 for r in rows)


def test_a_built_module_is_reduced_as_a_copy() -> None:
    module = by_hand(None, "cpu")
    opts = ProfileOptions(metrics=frozenset({"params", "flops"}), tome=(2,))
    rows = profile([module], opts).records
    assert [r["tokens_per_layer"] for r in rows] == ["37,37,37,37", "37,35,33,31"]
    reduced = create_model(ModelSpec("m", module=module, reduction=TokenReduction(tome_r=2)))
    assert reduced is not module and not hasattr(module, "token_reduction_state")
    assert type(module.blocks[0]).__name__ == "Block"


@pytest.mark.parametrize(
    ("model", "opts", "words"),
    [
        (VIT, dict(COUNTS, tome=(2, 99)), r"at most half \(18\) can be merged"),
        ("swin_tiny_patch4_window7_224", dict(metrics=COUNTS["metrics"], tome=(2,)), "not Swin"),
    ],
)
def test_a_point_that_cannot_run_stores_nothing(store, model, opts, words) -> None:
    with open_store(store) as st, pytest.raises(VitbenchError, match=words):
        profile([model], ProfileOptions(**opts), store=st)
    assert read_table(store, "profile").empty


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (dict(tome=(-1,)), "tome_r must be a whole number"),
        (dict(prune=(0.0,)), r"prune_keep must be a keep rate in \(0, 1\]"),
        (dict(prune=(1.5,)), r"prune_keep must be a keep rate in \(0, 1\]"),
        (dict(tome=(2,), tome_schedule="cosine"), "tome_schedule must be one of"),
    ],
)
def test_bad_values_are_refused_by_every_command(fields, words) -> None:
    with pytest.raises(VitbenchError, match=words):
        ProfileOptions(**COUNTS, **fields).validate()
    single = {k: v[0] if isinstance(v, tuple) else v for k, v in fields.items()}
    with pytest.raises(VitbenchError, match=words):
        AttentionOptions(**single).validate()
    with pytest.raises(VitbenchError, match=words):
        TrainConfig(**fields).validate()


# -- analyze attention --------------------------------------------------------------------


def test_merged_tokens_sit_at_the_mean_centre_of_what_they_hold() -> None:
    """A class token and a 2 x 2 grid of 16 px patches (centres (8, 8), (8, 24), (24, 8),
    (24, 24)); the first two patches merged: that token sits at (8, 16)."""
    model = create_model(ModelSpec(VIT, img_size=32, kwargs=KW), device="meta")
    sources = torch.tensor([[1, 0, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1.0]])
    place = place_merged(model, "blocks.1.attn", (32, 32), sources[None])
    lay = place.layout
    assert lay.kind == "merged" and (lay.n_queries, lay.n_keys) == (4, 4)
    np.testing.assert_allclose(lay.key_yx[0], [[8, 16], [24, 8], [24, 24]])
    assert lay.distances()[0, 0, 1].item() == pytest.approx(math.hypot(16, 8))


def _analysis(**fields):
    opts = AttentionOptions(
        n_images=4, batch_size=2, img_size=IMG, model_kwargs=KW, importance="none", n_overlays=0,
        **fields,
    )  # fmt: skip
    return analyze_attention(VIT, opts=opts).records


def test_attention_of_a_merged_model_per_layer() -> None:
    plain, merged = _analysis(), _analysis(tome=4)
    first = {r["layer"]: r for r in merged if r["head"] == 0}
    assert [first[i]["n_queries"] for i in range(4)] == [37, 33, 29, 25]
    assert {r["tokens_per_layer"] for r in merged} == {"37,33,29,25"}
    assert {(r["tome_r"], r["reduction"]) for r in merged} == {(4, "tome")}
    assert all(math.isfinite(r["mean_distance_px"]) for r in merged)  # every layer placed
    assert first[1]["token_positions"].startswith("merged")
    before = [r for r in plain if r["layer"] == 0]
    after = [r for r in merged if r["layer"] == 0]  # block 0 attends before any merge
    for a, b in zip(before, after, strict=True):
        assert b["mean_distance_px"] == pytest.approx(a["mean_distance_px"], rel=1e-5)
    assert "tome_r" not in plain[0]


# -- train's evaluation ---------------------------------------------------------------------


def test_train_tests_the_trained_weights_at_each_point(store) -> None:
    with open_store(store) as st:
        run = train(TrainConfig(**TRAIN, tome=(0, 2), prune=(0.5,)), store=st)
    plain, tome, prune = run.points
    assert (plain["reduction"], tome["tome_r"], prune["prune_keep"]) == ("none", 2, 0.5)
    assert plain["test_acc"] == run.test_acc and plain["test_loss"] == run.record["test_loss"]
    assert plain["macs"] == run.record["macs"] > tome["macs"]
    assert tome["tokens_per_layer"] == "17,15,13,11"  # 16 digit patches of 2 x 2 and a class
    assert all(
        p["images_per_s"] > 0 and p["test_images"] == plain["test_images"] for p in run.points
    )
    stored = read_table(store, "token_reduction")
    assert stored["point"].tolist() == [0, 1, 2] and set(stored["run_id"]) == {run.run_id}
    weights = run.run_dir / "model.safetensors"
    again = train(TrainConfig(**dict(TRAIN, epochs=0), checkpoint=str(weights), tome=(2,)))
    assert again.test_acc == run.test_acc and again.record["final_val_acc"] is None
    assert again.points[0]["test_acc"] == run.test_acc


def test_training_with_merging_on_tests_as_its_point() -> None:
    run = train(TrainConfig(**TRAIN, train_tome=2, tome=(0, 2)))
    assert run.record["macs"] == run.points[1]["macs"] < run.points[0]["macs"]
    assert run.points[1]["test_acc"] == run.test_acc
    assert {p["train_tome"] for p in run.points} == {2}


def test_train_refuses_a_point_too_large_before_it_trains() -> None:
    epochs: list[dict] = []
    with pytest.raises(VitbenchError, match="can be merged"):
        train(TrainConfig(**TRAIN, tome=(9,)), on_epoch=epochs.append)
    assert epochs == []


def test_a_config_without_points_keeps_its_fingerprint() -> None:
    assert TrainConfig().fingerprint() == DEFAULT_FINGERPRINT
    assert TrainConfig(tome=(0, 2)).fingerprint() != DEFAULT_FINGERPRINT
    cfg = TrainConfig.from_dict(dataclasses.asdict(TrainConfig(tome=(2,))) | {"tome": [2]})
    assert cfg.fingerprint() == TrainConfig(tome=(2,)).fingerprint()  # as read back from JSON
