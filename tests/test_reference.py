"""Published figures looked up by model, source and image size; empty cells read as None."""

from __future__ import annotations

from vitbench.reference import TIMM_INFER, TIMM_TRAIN, published_for, published_rows


def test_rows_of_every_source_in_the_table_order() -> None:
    rows = published_rows("vit_base_patch16_224")
    assert [r["source"][:4] for r in rows] == ["timm", "Doso", "timm"]
    assert rows[1]["gmacs"] is None and rows[1]["params_m"] == 86


def test_rows_filtered_by_source_and_image_size() -> None:
    assert published_rows("vit_base_patch16_224", 224, TIMM_INFER) == [
        published_for("vit_base_patch16_224")
    ]
    assert published_rows("vit_base_patch16_224", 384) == []
    assert published_rows("vit_base_patch16_224", float("nan")) == published_rows(
        "vit_base_patch16_224"
    )
    assert published_for("no_such_model") is None


def test_timms_inference_and_training_benchmarks_are_rows_of_their_own() -> None:
    infer = published_for("vit_base_patch16_224")
    train = published_for("vit_base_patch16_224", 224, TIMM_TRAIN)
    assert infer["gmacs"] == 17.58 and infer["train_throughput_sps"] is None
    assert train["train_throughput_sps"] == 390.86 and train["throughput_sps"] is None
    assert train["train_throughput_setting"] == "RTX 3090 AMP SGD batch 192 torch 1.12"
    assert train["source"].startswith("timm results/benchmark-train-amp-nchw-pt112-cu113-rtx3090")
    assert published_for("pvt_v2_b2", 224, TIMM_TRAIN) is None  # not in timm's training table


def test_callers_get_their_own_copies() -> None:
    published_for("vit_base_patch16_224")["gmacs"] = 0
    assert published_for("vit_base_patch16_224")["gmacs"] == 17.58
