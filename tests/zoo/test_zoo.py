"""Model zoo: names, aliases, globs, overrides and weights."""

from __future__ import annotations

import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from vitbench.errors import CheckpointError, UnknownModelError, VitbenchError
from vitbench.zoo import (
    ModelSpec,
    create_model,
    expand_names,
    list_models,
    resolve_name,
)

TINY = dict(img_size=32, kwargs=dict(patch_size=8, embed_dim=32, depth=1, num_heads=2))


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("ViT-B/16", "vit_base_patch16_224"),
        ("vit-ti", "vit_tiny_patch16_224"),
        ("ViT-L/16", "vit_large_patch16_224"),
        ("DeiT-B", "deit_base_patch16_224"),
        ("deit-b-distilled", "deit_base_distilled_patch16_224"),
        ("Swin-T", "swin_tiny_patch4_window7_224"),
        ("swin-b", "swin_base_patch4_window7_224"),
        ("PVT-v2-b2", "pvt_v2_b2"),
        ("cait-xxs24", "cait_xxs24_224"),
        ("CrossViT-S", "crossvit_small_240"),
        ("BEiT-B", "beit_base_patch16_224"),
        ("vit_small_patch16_224", "vit_small_patch16_224"),
    ],
)
def test_aliases_resolve(alias: str, name: str) -> None:
    assert resolve_name(alias) == name


def test_unknown_name_suggests_close_names() -> None:
    with pytest.raises(UnknownModelError) as err:
        resolve_name("vit_bse_patch16_224")
    assert "vit_base_patch16_224" in str(err.value)
    assert err.value.exit_code == 2


def test_globs_expand_and_deduplicate() -> None:
    names = expand_names(["deit_*_patch16_224", "DeiT-B"])
    assert "deit_tiny_patch16_224" in names and names.count("deit_base_patch16_224") == 1
    with pytest.raises(UnknownModelError):
        expand_names(["nothing_like_this_*"])


def test_list_models_substring() -> None:
    assert all("swin" in n for n in list_models("swin"))


def test_overrides_shape_the_model() -> None:
    model = create_model(
        ModelSpec(
            "vit_small_patch16_224",
            img_size=28,
            in_chans=1,
            num_classes=10,
            kwargs=dict(patch_size=4, depth=2),
        )
    )
    out = model(torch.randn(2, 1, 28, 28))
    assert out.shape == (2, 10) and len(model.blocks) == 2


def test_impossible_size_is_a_clear_error() -> None:
    with pytest.raises(VitbenchError):
        create_model(ModelSpec("vit_small_patch16_224", kwargs=dict(embed_dim=100, num_heads=3)))
    with pytest.raises(VitbenchError):
        create_model(ModelSpec("vit_small_patch16_224", kwargs=dict(not_an_option=1)))


def _tiny(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return create_model(ModelSpec("vit_tiny_patch16_224", **TINY))


def test_checkpoint_round_trip_safetensors_and_torch(tmp_path) -> None:
    src = _tiny(0)
    st, pt = tmp_path / "w.safetensors", tmp_path / "w.pt"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(st))
    torch.save({"model": src.state_dict(), "epoch": 3}, pt)
    for path in (st, pt):
        dst = create_model(ModelSpec("vit_tiny_patch16_224", **TINY), checkpoint=path)
        x = torch.randn(1, 3, 32, 32)
        assert torch.equal(dst(x), src(x))


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_untrusted_pickle_is_refused(tmp_path, capsys) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"weight": _Evil()}, fh)
    with pytest.raises(CheckpointError):
        create_model(ModelSpec("vit_tiny_patch16_224", **TINY), checkpoint=path)
    assert "code ran" not in capsys.readouterr().out


def test_corrupted_missing_and_mismatched_checkpoints(tmp_path) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    spec = ModelSpec("vit_tiny_patch16_224", **TINY)
    with pytest.raises(CheckpointError):
        create_model(spec, checkpoint=bad)
    with pytest.raises(CheckpointError, match="not found"):
        create_model(spec, checkpoint=tmp_path / "nope.pt")
    other = tmp_path / "other.pt"
    torch.save(create_model(ModelSpec("vit_tiny_patch16_224", img_size=64)).state_dict(), other)
    with pytest.raises(CheckpointError, match="does not fit"):
        create_model(spec, checkpoint=other)


def test_pretrained_without_cache_or_network_fails_fast(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    import timm

    def must_not_retry(*_a, **_k):  # timm's hub download retries for about a minute
        raise AssertionError("timm.create_model reached without weights at hand")

    monkeypatch.setattr(timm, "create_model", must_not_retry)
    with pytest.raises(VitbenchError, match="hub"):
        create_model("vit_tiny_patch16_224", pretrained=True)


def test_meta_device_builds_without_storage() -> None:
    model = create_model("vit_large_patch16_224", device="meta")
    assert all(p.is_meta for p in model.parameters())


def test_vitbench_checkpoint_rebuilds_its_own_shape(tmp_path, capsys) -> None:
    """Weights saved with their spec load by name alone, in create_model, profile and analyze."""
    from vitbench.cli import main
    from vitbench.train.checkpoint import save_weights

    spec = ModelSpec(
        "scratch_vit_tiny_patch16_224",
        img_size=8,
        in_chans=1,
        num_classes=10,
        kwargs=dict(patch_size=2, embed_dim=32, depth=2, num_heads=2),
    )
    torch.manual_seed(0)
    src = create_model(spec)
    path = save_weights(src, tmp_path / "model.safetensors", {}, spec)
    rebuilt = create_model("scratch_vit_tiny_patch16_224", checkpoint=path)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(rebuilt(x), src(x))
    # a user's override still wins, and then the weights must fit it
    with pytest.raises(CheckpointError, match="does not fit"):
        create_model(ModelSpec("scratch_vit_tiny_patch16_224", num_classes=3), checkpoint=path)
    outputs = []
    for argv in (
        ["profile", "scratch_vit_tiny_patch16_224", "--metrics", "params,flops"],
        ["analyze", "attention", "scratch_vit_tiny_patch16_224", "-n", "4", "--no-save",
         "--importance", "none"],
    ):  # fmt: skip
        with pytest.raises(SystemExit) as code:
            main([*argv, "--checkpoint", str(path), "--out", str(tmp_path), "--format", "json"])
        out, err = capsys.readouterr()
        assert code.value.code == 0, err
        outputs.append([json.loads(line) for line in out.splitlines()])
    profiled, analyzed = outputs
    assert profiled[0]["img_size"] == 8 and profiled[0]["tokens"] == 17  # 4 x 4 patches + class
    assert profiled[0]["params"] == sum(p.numel() for p in src.parameters())
    assert {(r["layer"], r["head"]) for r in analyzed} == {(0, 0), (0, 1), (1, 0), (1, 1)}


def _spec_file(path, **kwargs) -> str:
    """A one-tensor safetensors file claiming to hold vit_tiny with ``kwargs``."""
    from vitbench.zoo.weights import SPEC_METADATA_KEY

    spec = json.dumps(dict(name="vit_tiny_patch16_224", kwargs=kwargs))
    save_file({"w": torch.zeros(1)}, str(path), metadata={SPEC_METADATA_KEY: spec})
    return str(path)


def test_a_huge_stored_spec_is_refused_before_anything_is_allocated(tmp_path) -> None:
    import resource
    import time

    path = _spec_file(tmp_path / "big.safetensors", embed_dim=4096, depth=64, num_heads=64)
    create_model("vit_tiny_patch16_224", device="meta")  # timm imported and warm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(CheckpointError, match="does not fit the model"):
        create_model("vit_tiny_patch16_224", checkpoint=path)  # ~50 GB if it were built
    assert time.perf_counter() - started < 3
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 256 * 1024  # KiB


@pytest.mark.parametrize(
    "kwargs",
    [dict(checkpoint_path="/etc/hostname"), dict(pretrained_cfg_overlay={}), dict(depth=[1] * 9)],
)
def test_a_stored_spec_with_other_keys_is_refused(tmp_path, kwargs) -> None:
    path = _spec_file(tmp_path / "odd.safetensors", **kwargs)
    with pytest.raises(CheckpointError, match="model spec with"):
        create_model("vit_tiny_patch16_224", checkpoint=path)


def test_stored_spec_keys_include_the_scratch_models_arguments() -> None:
    from vitbench.zoo.factory import SHAPE_KEYS, spec_kwarg_keys

    keys = spec_kwarg_keys()
    assert SHAPE_KEYS <= keys and {"pos_embed", "vocab_size", "hidden_dim"} <= keys
    assert "checkpoint_path" not in keys


def test_a_keyword_of_the_wrong_type_is_named() -> None:
    with pytest.raises(VitbenchError, match="model kwarg depth wants int, got 'abc'"):
        create_model(ModelSpec("vit_tiny_patch16_224", kwargs=dict(depth="abc")), device="meta")
    with pytest.raises(VitbenchError, match="mlp_ratio wants float"):
        create_model(ModelSpec("scratch_vit_tiny_patch16_224", kwargs=dict(mlp_ratio="x")))


def test_an_image_smaller_than_a_patch_names_the_smallest_size() -> None:
    with pytest.raises(VitbenchError, match="smallest img_size is 16"):
        create_model(ModelSpec("vit_tiny_patch16_224", img_size=7), device="meta")


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
def test_torch_checkpoint_shapes_are_read_without_loading_weights(tmp_path, zip_format) -> None:
    from vitbench.zoo.weights import checkpoint_shapes

    state = {"module.head.weight": torch.randn(3, 4), "module.head.bias": torch.zeros(3)}
    path = tmp_path / "w.pt"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    assert checkpoint_shapes(path) == {"head.weight": (3, 4), "head.bias": (3,)}
