"""A ViT or BEiT encoder with either decoder gives one logit per class and pixel."""

from __future__ import annotations

import pytest
import torch

from vitbench.errors import VitbenchError
from vitbench.segmentation.model import SegmentationModel, patch_grid
from vitbench.zoo import ModelSpec, create_model

SMALL = dict(embed_dim=32, depth=1, num_heads=2)


def _encoder(name: str, patch: int) -> torch.nn.Module:
    spec = ModelSpec(
        name, img_size=32, in_chans=3, num_classes=0, kwargs=dict(patch_size=patch, **SMALL)
    )
    return create_model(spec, device="cpu")


@pytest.mark.parametrize("decoder", ["linear", "setr-pup"])
@pytest.mark.parametrize(
    ("name", "patch"),
    [
        ("scratch_vit_tiny_patch16_224", 4),
        ("scratch_deit_tiny_distilled_patch16_224", 8),  # two prefix tokens dropped
        ("vit_tiny_patch16_224", 4),  # timm's
        ("beit_base_patch16_224", 2),
    ],
)
def test_logits_per_class_and_pixel(name: str, patch: int, decoder: str) -> None:
    model = SegmentationModel(_encoder(name, patch), name, 7, decoder)
    assert model.grid == (32 // patch, 32 // patch)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7, 32, 32)


def test_pup_upsamples_once_per_factor_of_two_in_the_patch() -> None:
    model = SegmentationModel(_encoder("scratch_vit_tiny_patch16_224", 8), "vit", 5, "setr-pup")
    ups = [m for m in model.decoder if isinstance(m, torch.nn.Upsample)]
    assert len(ups) == 3  # 4 x 4 tokens -> 32 x 32 logits, as SETR-PUP's four for 16 px


def test_a_model_without_patch_grid_is_refused() -> None:
    spec = ModelSpec("scratch_mlp", img_size=8, in_chans=1, num_classes=10)
    with pytest.raises(VitbenchError, match="needs a ViT or BEiT encoder"):
        patch_grid(create_model(spec, device="meta"), "scratch_mlp")


def test_encoder_starts_from_a_classifier_checkpoint_without_its_head(tmp_path) -> None:
    from vitbench.segmentation.data import load_masks
    from vitbench.segmentation.training import Segmentation
    from vitbench.train.checkpoint import save_weights
    from vitbench.train.config import TrainConfig

    kwargs = dict(patch_size=4, **SMALL)
    classifier_cfg = TrainConfig(model_kwargs=kwargs)
    spec = classifier_cfg.model_spec(16, 1, 10)  # a digits classifier: 10 classes
    classifier = create_model(spec, device="cpu")
    path = save_weights(classifier, tmp_path / "model.safetensors", classifier_cfg.to_dict(), spec)
    cfg = TrainConfig(
        task="segmentation", dataset="digits_canvas", model_kwargs=kwargs, checkpoint=str(path)
    )
    data = load_masks("digits_canvas", img_size=16, subset=4)
    _, model, new_head = Segmentation().build(cfg, data, torch.device("cpu"))
    assert new_head  # 10 digit classes there, 11 classes of pixels here
    weights = model.encoder.state_dict()
    assert torch.equal(weights["patch_embed.proj.weight"], classifier.patch_embed.proj.weight)
    assert not any(key.startswith("head") for key in weights)
