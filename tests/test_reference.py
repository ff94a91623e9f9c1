"""Published figures looked up by model, source and image size; empty cells read as None."""

from __future__ import annotations

from vitbench.reference import published_for, published_rows


def test_rows_of_every_source_in_the_table_order() -> None:
    rows = published_rows("vit_base_patch16_224")
    assert [r["source"][:4] for r in rows] == ["timm", "Doso"]
    assert rows[1]["gmacs"] is None and rows[1]["params_m"] == 86


def test_rows_filtered_by_source_and_image_size() -> None:
    assert published_rows("vit_base_patch16_224", 224, "timm") == [
        published_for("vit_base_patch16_224")
    ]
    assert published_rows("vit_base_patch16_224", 384) == []
    assert published_rows("vit_base_patch16_224", float("nan")) == published_rows(
        "vit_base_patch16_224"
    )
    assert published_for("no_such_model") is None


def test_callers_get_their_own_copies() -> None:
    published_for("vit_base_patch16_224")["gmacs"] = 0
    assert published_for("vit_base_patch16_224")["gmacs"] == 17.58
