"""The streamed sums equal the reference functions on all images at once, on real weights.

The stored numbers come from :class:`LayerStats`, which folds in one batch at a time; the truths
(distance, entropy, attention to the class token and to self) are the reference functions of
``distance`` and ``entropy``, tested on their own against brute force. Here both read the same
weights: those of tiny models over digits, batch by batch (of unequal sizes) for the one and
concatenated for the other. The query and key projections are scaled up so that rows are
peaked and differ from image to image, not the near-uniform rows of a random init.

Grids are 5 x 5 (and Swin's windows 7 x 7): no pair of cells then lies exactly on a bin edge of
the distance profile (a multiple of diagonal / 8), where float rounding could pick either bin.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from vitbench.attention import AttentionOptions, ImageSource, analyze_attention
from vitbench.attention.distance import mean_attention_distance
from vitbench.attention.entropy import attention_entropy, attention_to, normalised_entropy
from vitbench.attention.extract import extract_attention, find_attention_layers
from vitbench.attention.geometry import TokenLayout, layout_for
from vitbench.attention.images import image_batches, normalisation
from vitbench.attention.stats import DISTANCE_BINS, LayerStats
from vitbench.zoo import ModelSpec, create_model, default_input_size

SPECS = {
    "timm_vit": ModelSpec(
        "vit_small_patch16_224",
        img_size=40,
        kwargs=dict(patch_size=8, depth=2, embed_dim=48, num_heads=3),
    ),
    "scratch_vit": ModelSpec(
        "scratch_vit_tiny_patch16_224",
        img_size=10,
        kwargs=dict(patch_size=2, embed_dim=16, depth=2, num_heads=2),
    ),
    "swin": ModelSpec(
        "swin_tiny_patch4_window7_224",
        img_size=56,
        kwargs=dict(depths=(1, 1, 1, 1), embed_dim=16, num_heads=(1, 1, 1, 1)),
    ),
}
MEASURES = ("mean_distance_px", "entropy", "entropy_norm", "cls_attention", "self_attention")


def sharp_model(spec: ModelSpec) -> nn.Module:
    """The model with its query and key weights scaled by 16: peaked attention rows."""
    torch.manual_seed(0)
    net = create_model(spec)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith(("qkv.weight", ".q.weight", ".k.weight")):
                p.mul_(16)
    return net


def digit_batches(net: nn.Module, spec: ModelSpec, n: int, batch_size: int) -> list[torch.Tensor]:
    """The first ``n`` digits as the model takes them, in batches of ``batch_size``."""
    size = default_input_size(net, spec)
    batches = image_batches(ImageSource("digits"), n, batch_size, size, *normalisation(net))
    return [b.x for b in batches]


def reference(
    w: torch.Tensor, layout: TokenLayout, renormalise: bool
) -> dict[str, np.ndarray | None]:
    """Per-head truths on all rows at once, (B, H, Nq, Nk) float64 -> name: (H,)."""
    own = None if layout.self_key is None else torch.as_tensor(layout.self_key)
    out = {
        "mean_distance_px": mean_attention_distance(w, layout, renormalise),
        "entropy": attention_entropy(w).mean(dim=(0, 2)),
        "entropy_norm": normalised_entropy(w).mean(dim=(0, 2)),
        "cls_attention": None if layout.cls_key is None else attention_to(w, layout.cls_key),
        "self_attention": None if own is None else attention_to(w, own),
    }
    for key in ("cls_attention", "self_attention"):
        out[key] = None if out[key] is None else out[key].mean(dim=(0, 2))
    return {k: None if v is None else v.numpy() for k, v in out.items()}


def profile_by_hand(w: np.ndarray, layout: TokenLayout, diagonal: float) -> np.ndarray:
    """(H, bins + 1): each patch query's attention per distance band, then on prefix keys."""
    pq, pk = layout.n_prefix_q, layout.n_prefix_k
    d = np.linalg.norm(layout.query_yx[:, None] - layout.key_yx[None], axis=-1)  # (Nq', Nk')
    band = np.minimum(np.floor(d / diagonal * DISTANCE_BINS), DISTANCE_BINS - 1)
    patch = w[:, :, pq:, pk:]  # (B, H, Nq', Nk')
    hist = [(patch * (band == b)).sum(axis=-1).mean(axis=(0, 2)) for b in range(DISTANCE_BINS)]
    prefix = w[:, :, pq:, :pk].sum(axis=-1).mean(axis=(0, 2))  # (H,)
    return np.stack([*hist, prefix], axis=1)


@pytest.mark.parametrize("renormalise", [False, True], ids=["raw", "renormalised"])
@pytest.mark.parametrize("model", sorted(SPECS))
def test_streamed_sums_over_batches_equal_the_references_on_all_images(model, renormalise):
    spec = SPECS[model]
    net = sharp_model(spec)
    hw = default_input_size(net, spec)[1:]
    diagonal = math.hypot(*hw)
    batches = digit_batches(net, spec, n=10, batch_size=4)  # 4, 4 and 2 images
    maps = [extract_attention(net, x)[1] for x in batches]  # [batch][layer] (B, H, Nq, Nk)
    for layer in find_attention_layers(net):
        ws = [m[layer.index] for m in maps]
        layout = layout_for(net, layer.name, hw, *ws[0].shape[-2:])
        assert layout is not None and layout.query_yx is not None
        stats = LayerStats(layer, layout, diagonal, renormalise)
        for w in ws:
            stats.add(w)
        every = torch.cat(ws).double()
        assert every.amax(dim=-1).mean() > 2 / every.shape[-1]  # peaked rows, not uniform ones
        truth = reference(every, layout, renormalise)
        got = {k: np.array([r[k] for r in stats.head_records()]) for k in MEASURES}
        for key in MEASURES:
            if truth[key] is None:
                assert np.isnan(got[key]).all(), key
            else:
                np.testing.assert_allclose(got[key], truth[key], rtol=1e-6, atol=1e-6, err_msg=key)
        by_hand = profile_by_hand(every.numpy(), layout, diagonal)
        np.testing.assert_allclose(stats.distance_profile(), by_hand, rtol=1e-6, atol=1e-6)


def test_stored_records_equal_the_references_on_one_forward_of_all_images():
    spec = SPECS["timm_vit"]
    net = sharp_model(spec)
    opts = AttentionOptions(n_images=7, batch_size=3, importance="none", device="cpu")
    records = analyze_attention(net, ImageSource("digits"), opts).records
    hw = default_input_size(net, spec)[1:]
    (x,) = digit_batches(net, spec, n=7, batch_size=7)
    _, maps = extract_attention(net, x)
    assert records[0]["weights"] == "module" and records[0]["n_images"] == 7
    for layer, w in zip(find_attention_layers(net), maps, strict=True):
        truth = reference(w.double(), layout_for(net, layer.name, hw, *w.shape[-2:]), False)
        rows = [r for r in records if r["layer"] == layer.index]
        for key in MEASURES:
            got = np.array([r[key] for r in rows])
            np.testing.assert_allclose(got, truth[key], rtol=1e-6, atol=1e-6, err_msg=key)
