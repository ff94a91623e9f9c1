"""AttentionOptions: its checks, and which options apply to a name, a spec or a built module.

Nothing is silently ignored: an option either changes what is built and analysed (and the
records say so) or is refused with one line naming it.
"""

from __future__ import annotations

import pytest
import torch

from vitbench.attention import AttentionOptions, analyze_attention
from vitbench.errors import CheckpointError, VitbenchError
from vitbench.zoo import ModelSpec, create_model

NAME = "scratch_vit_tiny_patch16_224"
KWARGS = dict(patch_size=2, embed_dim=16, depth=1, num_heads=2)
QUICK = dict(n_images=2, batch_size=2, importance="none", device="cpu")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(fusion="median"), "fusion must be one of mean, max, min, got 'median'"),
        (dict(importance="all"), "importance must be one of gradient, mask, both, none"),
        (dict(projection="umap"), "projection must be one of pca, tsne, got 'umap'"),
        (dict(discard_ratio=1.0), "discard_ratio must be in [0, 1), got 1.0"),
        (dict(n_clusters=0), "n_clusters must be at least 1, got 0"),
        (dict(n_images=0), "n_images must be at least 1, got 0"),
        (dict(batch_size=0), "batch_size must be at least 1, got 0"),
        (dict(img_size=0), "img_size must be at least 1, got 0"),
        (dict(n_overlays=-1), "n_overlays must be at least 0, got -1"),
        (dict(device="meta"), "unknown device 'meta'"),
    ],
)
def test_options_no_analysis_can_use_are_refused_by_name(options, message):
    with pytest.raises(VitbenchError) as err:
        AttentionOptions(**options).validate()
    assert str(err.value).startswith(message)


def test_a_missing_checkpoint_is_refused_before_anything_is_built(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        AttentionOptions(checkpoint=tmp_path / "none.safetensors").validate()


def test_no_device_means_cuda_when_torch_sees_one():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert AttentionOptions().resolved_device() == expected
    assert AttentionOptions(device="cpu").resolved_device() == "cpu"


def test_a_name_is_built_with_the_options_sizes():
    opts = AttentionOptions(img_size=8, num_classes=3, model_kwargs=KWARGS, **QUICK)
    rec = analyze_attention(NAME, opts=opts).records[0]
    assert rec["img_size"] == "8x8" and rec["n_keys"] == 17 and rec["weights"] == "random"


def test_a_spec_takes_the_options_it_leaves_unset_and_refuses_others():
    spec = ModelSpec(NAME, kwargs=dict(KWARGS))
    rec = analyze_attention(spec, opts=AttentionOptions(img_size=8, **QUICK)).records[0]
    assert rec["img_size"] == "8x8" and rec["n_keys"] == 17
    same = AttentionOptions(img_size=8, model_kwargs={"depth": 1}, **QUICK)
    assert len(analyze_attention(ModelSpec(NAME, 8, kwargs=KWARGS), opts=same).records) == 2
    with pytest.raises(VitbenchError, match=r"^img_size 16 differs from the spec's 8"):
        analyze_attention(ModelSpec(NAME, 8, kwargs=KWARGS), opts=AttentionOptions(img_size=16))
    with pytest.raises(VitbenchError, match=r"^num_classes 3 differs from the spec's 10"):
        analyze_attention(ModelSpec(NAME, num_classes=10), opts=AttentionOptions(num_classes=3))
    with pytest.raises(VitbenchError, match=r"^model_kwargs depth differ from the spec's"):
        spec = ModelSpec(NAME, kwargs=KWARGS)
        analyze_attention(spec, opts=AttentionOptions(model_kwargs={"depth": 2}))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(pretrained=True), "a built module carries its own weights; pretrained and"),
        (dict(checkpoint="CKPT"), "a built module carries its own weights; pretrained and"),
        (dict(num_classes=10), "a built module has its shape already; num_classes and"),
        (dict(model_kwargs={"depth": 2}), "a built module has its shape already; num_classes and"),
    ],
)
def test_a_built_module_refuses_options_that_build_one(options, message, tmp_path):
    ckpt = tmp_path / "weights.safetensors"
    ckpt.write_bytes(b"never read")
    options = {k: ckpt if v == "CKPT" else v for k, v in options.items()}
    net = create_model(ModelSpec(NAME, 8, kwargs=KWARGS))
    with pytest.raises(VitbenchError) as err:
        analyze_attention(net, opts=AttentionOptions(**options, **QUICK))
    assert str(err.value).startswith(message)


def test_a_built_module_is_recorded_with_its_own_weights_and_the_input_size_asked():
    spec = ModelSpec("vit_small_patch16_224", 32, kwargs=dict(depth=1, dynamic_img_size=True))
    net = create_model(spec)
    a = analyze_attention(net, opts=AttentionOptions(img_size=48, **QUICK), model_name="mine")
    rec = a.records[0]
    assert a.model == rec["model"] == "mine"
    assert rec["weights"] == "module" and rec["checkpoint"] is None
    assert rec["img_size"] == "48x48" and rec["n_keys"] == 1 + 3 * 3


def test_points_are_the_plain_model_then_each_r_then_each_keep_rate() -> None:
    opts = AttentionOptions(tome=(0, 4, 8), prune=(0.7,))
    points = [(p.tome, p.prune) for p in opts.at_points()]
    assert points == [((None,), (None,)), ((4,), (None,)), ((8,), (None,)), ((None,), (0.7,))]
    assert AttentionOptions(tome=4).tome == (4,)  # one value from Python is one point
    with pytest.raises(VitbenchError, match="analyses one point"):
        opts.reduction()
