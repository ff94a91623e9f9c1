"""Models from other sources: torchvision's classifiers, a user's factory, packages that register
models with timm, and timm's hf-hub names."""

from __future__ import annotations

import sys

import pytest
import torch
import torchvision.models as tvm
from torch import nn
from user_models import write_model_file, write_package, write_registering_package

from vitbench.errors import UnknownModelError, VitbenchError
from vitbench.measure.model_cost import count_model
from vitbench.zoo import (
    ModelSpec,
    NotAppliedWarning,
    create_model,
    default_input_size,
    expand_names,
    list_models,
    load_imports,
    not_applied,
    resolve_name,
)
from vitbench.zoo.sources import meta_copy

#: operators of products and convolutions: all that torchvision's operation count counts
PRODUCTS = ("mm", "addmm", "bmm", "convolution", "_scaled_dot_product")


@pytest.mark.parametrize("name", ["vit_b_16", "swin_t", "swin_v2_t", "maxvit_t"])
def test_torchvision_models_match_torchvision_published_figures(name: str) -> None:
    """Parameters exactly and MACs within 1% of torchvision's weights metadata.

    torchvision's ``_ops`` ("GFLOPS" in its tables) was counted with a dispatch-mode counter
    that counts one multiply-add of a matrix product or a convolution as one operation (pytorch/
    vision#6936): it is GMACs of products and convolutions only, at the weights' crop size. Our
    MACs use the same unit and add fvcore's norms (5 per element) and pooling, so they are a
    little higher (0.1% for ViT-B/16, under 1% for MaxViT); their products and convolutions
    alone agree with ``_ops`` to 0.1%.
    """
    meta = tvm.get_model_weights(name).DEFAULT.meta
    cost = count_model(ModelSpec(f"torchvision:{name}"))  # on the meta device
    assert cost.params == meta["num_params"]
    assert cost.macs / 1e9 == pytest.approx(meta["_ops"], rel=0.01)
    products = sum(v for k, v in cost.count.by_op.items() if k.startswith(PRODUCTS))
    assert products / 1e9 == pytest.approx(meta["_ops"], rel=0.001)
    assert cost.uncounted == {}


def test_torchvision_input_size_is_its_own() -> None:
    """The default weights' crop (256 for Swin-V2-T); img_size goes to ViT's image_size."""
    spec = ModelSpec("torchvision:swin_v2_t")
    assert default_input_size(create_model(spec, device="meta"), spec) == (3, 256, 256)
    spec = ModelSpec("torchvision:vit_b_16", img_size=384, num_classes=10)
    vit = create_model(spec, device="meta")
    assert vit.encoder.pos_embedding.shape[1] == 1 + (384 // 16) ** 2
    assert vit.heads.head.out_features == 10
    assert default_input_size(vit, spec) == (3, 384, 384)


def test_torchvision_names_are_listed_and_globbed() -> None:
    assert "torchvision:swin_t" in list_models("swin")
    assert expand_names(["torchvision:vit_b_*"]) == ["torchvision:vit_b_16", "torchvision:vit_b_32"]
    with pytest.raises(UnknownModelError, match="did you mean torchvision:vit_b_16"):
        resolve_name("torchvision:vit_b_61")
    with pytest.raises(VitbenchError, match="takes 3 input channels, not 1"):
        create_model(ModelSpec("torchvision:resnet18", in_chans=1), device="meta")


def test_torchvision_weights_come_from_the_torch_hub_cache_only(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(VitbenchError, match="squeezenet1_1-b8a52dc0.pth") as err:
        create_model("torchvision:squeezenet1_1", pretrained=True)
    assert str(tmp_path / "checkpoints") in str(err.value) and "\n" not in str(err.value)
    published = tvm.squeezenet1_1().state_dict()  # stands in for the downloaded file
    (tmp_path / "checkpoints").mkdir()
    torch.save(published, tmp_path / "checkpoints" / "squeezenet1_1-b8a52dc0.pth")
    model = create_model("torchvision:squeezenet1_1", pretrained=True)
    assert all(torch.equal(v, published[k]) for k, v in model.state_dict().items())


def test_file_factory_takes_what_it_accepts_and_reports_the_rest(tmp_path) -> None:
    path = write_model_file(tmp_path)
    name = resolve_name(f"{path}:tiny_vit")
    assert name == f"{path}:tiny_vit"
    spec = ModelSpec(name, img_size=64, num_classes=5, kwargs={"mlp_ratio": 2.0})
    with pytest.warns(NotAppliedWarning, match="mlp_ratio not applied"):
        model = create_model(spec)
    assert model.pos.shape[1] == 1 + (64 // 8) ** 2  # img_size reached the factory
    assert model.head.out_features == 5
    assert not_applied(spec) == ("mlp_ratio",)
    assert default_input_size(model, spec) == (3, 64, 64)
    default = ModelSpec(name)
    assert default_input_size(create_model(default), default) == (3, 32, 32)  # its default


def test_a_model_that_declares_no_size_needs_input_size(tmp_path) -> None:
    name = f"{write_model_file(tmp_path)}:sizeless"
    spec = ModelSpec(name, img_size=48)
    with pytest.warns(NotAppliedWarning, match="img_size not applied"):
        model = create_model(spec, device="meta")
    with pytest.raises(VitbenchError, match="input_size .* is required"):
        default_input_size(model, spec)
    given = ModelSpec(name, img_size=48, input_size=(3, 40, 24))
    assert default_input_size(model, given) == (3, 40, 24)  # img_size was not applied
    with pytest.warns(NotAppliedWarning):
        assert count_model(given).input_size == (3, 40, 24)


def test_module_factory(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package = write_package(tmp_path)
    model = create_model(ModelSpec(f"{package}.models:tiny_vit", num_classes=3))
    assert model.head.out_features == 3


def test_imported_package_registers_a_timm_name(tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    package, name = write_registering_package(tmp_path, monkeypatch)
    with pytest.raises(UnknownModelError):
        resolve_name(name)
    load_imports([package])
    spec = ModelSpec(resolve_name(name), img_size=16)
    assert count_model(spec).params == sum(p.numel() for p in create_model(spec).parameters())
    with pytest.raises(VitbenchError, match="cannot import no_such_package_zz: ModuleNotFound"):
        load_imports(["no_such_package_zz"])


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("missing.py:tiny_vit", "model file not found: "),
        ("FILE:tiny_vt", "has no attribute 'tiny_vt'; did you mean tiny_vit"),
        ("FILE:NOT_CALLABLE", "is an object of type int, not a callable"),
        ("BROKEN:f", "cannot import"),
        ("no_such_pkg_zz.models:f", "cannot import no_such_pkg_zz.models: ModuleNotFoundError"),
    ],
)
def test_bad_factories_are_one_line(tmp_path, spec: str, words: str) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_zz\n")
    spec = spec.replace("FILE", str(write_model_file(tmp_path))).replace("BROKEN", str(broken))
    spec = spec.replace("missing.py", str(tmp_path / "missing.py"))
    with pytest.raises(VitbenchError, match=words) as err:
        resolve_name(spec)
    assert "\n" not in str(err.value)


def test_a_factory_must_return_a_module(tmp_path) -> None:
    name = f"{write_model_file(tmp_path)}:not_a_model"
    with pytest.raises(VitbenchError, match="returned a value of type str, not a torch.nn.Module"):
        create_model(name)
    with pytest.raises(VitbenchError, match="takes no pretrained argument"):
        create_model(f"{write_model_file(tmp_path)}:tiny_vit", pretrained=True)


def test_hf_hub_names_pass_to_timm(tmp_path, monkeypatch) -> None:
    """Unchanged by resolve_name; without the hub or its cache a quick one-line error."""
    import huggingface_hub.constants as hub

    name = "hf-hub:timm/vit_tiny_patch16_224.augreg_in21k"
    assert resolve_name(name) == name
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(VitbenchError, match="config of hf-hub:.* not in the hub cache"):
        create_model(name, device="meta")


def test_hf_hub_model_builds_from_the_cache(tmp_path, monkeypatch) -> None:
    """A config in the hub cache is enough to build the model offline (timm reads it)."""
    import json

    import huggingface_hub.constants as hub

    snapshot = tmp_path / "models--someone--tiny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (tmp_path / "models--someone--tiny" / "refs").mkdir()
    (tmp_path / "models--someone--tiny" / "refs" / "main").write_text("0" * 40)
    config = {"architecture": "vit_tiny_patch16_224", "num_classes": 7, "pretrained_cfg": {}}
    (snapshot / "config.json").write_text(json.dumps(config))
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", hub.HF_HUB_OFFLINE)  # restored after
    model = create_model("hf-hub:someone/tiny", device="meta")
    assert model.head.out_features == 7


def test_meta_copy_leaves_the_module_as_it_was() -> None:
    module = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    copy = meta_copy(module)
    assert {p.device.type for p in copy.state_dict().values()} == {"meta"}
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())
    assert sum(p.numel() for p in copy.parameters()) == 4 * 4 + 4 + 2 * 4


def test_load_imports_finds_packages_in_the_working_directory(tmp_path, monkeypatch) -> None:
    """As ``python -m`` would: the `vitbench` script's own folder is first on the path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    package = write_package(tmp_path)
    load_imports([f"{package}.models"])
    assert f"{package}.models" in sys.modules
