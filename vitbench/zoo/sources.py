"""Models from beyond timm's registry and ours: torchvision's classifiers, a user's factory.

A spec's name says where its model comes from:

- ``torchvision:NAME``: a classification model of ``torchvision.models`` (``vit_b_16``,
  ``swin_t``, ``maxvit_t``); ``img_size`` goes to the constructor where it takes one (ViT's
  ``image_size``, MaxViT's ``input_size``), other models take any input size;
- ``path/to/file.py:factory`` or ``package.module:factory``: a callable returning an
  ``nn.Module``, called with the size overrides and model kwargs its signature accepts; the
  others are *not applied* (a :class:`NotAppliedWarning`, and :func:`not_applied` for records);
- ``hf:NAME``: a Hugging Face ``transformers`` model, a model type or a hub repo id
  (:mod:`vitbench.zoo.hf`);
- ``hf-hub:org/repo``: passed to timm as it is;
- anything else: a timm, alias or from-scratch name (:mod:`vitbench.zoo.factory`).

:func:`load_imports` imports packages first, so the models they register with timm's
``register_model`` are found by name.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
from torch import nn

from vitbench.errors import UnknownModelError, VitbenchError

if TYPE_CHECKING:
    from vitbench.zoo.factory import ModelSpec

TORCHVISION = "torchvision:"
HF_HUB = ("hf-hub:", "hf_hub:")
#: constructor keywords of torchvision models that set the image size, and how they take it
_TORCHVISION_SIZE_KEYS = ("image_size", "input_size")  # ViT: an int; MaxViT: (H, W)


class NotAppliedWarning(UserWarning):
    """A size override or model kwarg that a model's factory does not take."""


def load_imports(modules: Iterable[str] | str | None) -> None:
    """Import each package (models it registers with timm become names); one-line errors."""
    for name in [modules] if isinstance(modules, str) else modules or ():
        _import(name)


def _import(name: str) -> Any:
    """``importlib.import_module`` with the working directory on the path (after the rest),
    as ``python -m`` would have it; a failure is one line."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(name)
    except Exception as exc:
        raise VitbenchError(f"cannot import {name}: {first_line(exc)}") from exc


def first_line(exc: BaseException) -> str:
    """``'ValueError: its first line'`` of an exception, for one-line messages."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


# -- which source -----------------------------------------------------------------------------


def source_of(name: str) -> str:
    """``'torchvision'``, ``'hf'``, ``'hf-hub'``, ``'file'``, ``'module'`` or ``'name'``
    (timm, ours)."""
    from vitbench.zoo.hf import is_hf  # hf imports this module

    if is_hf(name):
        return "hf"
    if name.startswith(TORCHVISION):
        return "torchvision"
    if name.startswith(HF_HUB):
        return "hf-hub"
    where, sep, attr = name.rpartition(":")
    if not sep or not where or not attr:
        return "name"
    if where.endswith(".py") or "/" in where or os.sep in where:
        return "file"
    if all(part.isidentifier() for part in where.split(".")):
        return "module"
    return "name"


def resolve_source(name: str) -> str | None:
    """The canonical name of a torchvision, factory, hf or hf-hub spec (checked: the factory is
    loaded, an hf config found); None for a plain name, which the zoo's own registries resolve."""
    kind = source_of(name)
    if kind == "hf":
        from vitbench.zoo.hf import hf_config

        hf_config(name)
        return name
    if kind == "torchvision":
        if name not in torchvision_names():
            close = difflib.get_close_matches(name, torchvision_names(), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownModelError(f"unknown torchvision model '{name}'{hint}")
        return name
    if kind in ("file", "module"):
        load_factory(name)
        return name
    return name if kind == "hf-hub" else None


@functools.cache
def torchvision_names() -> list[str]:
    """torchvision's classification models, as ``torchvision:NAME``."""
    import torchvision.models as tvm

    return [TORCHVISION + n for n in tvm.list_models(module=tvm)]


# -- building ---------------------------------------------------------------------------------


def construct(name: str, kwargs: dict[str, Any], pretrained: bool) -> nn.Module | None:
    """The model of a torchvision, hf or factory spec (on the default device); None otherwise."""
    kind = source_of(name)
    if kind == "torchvision":
        return _torchvision(name, kwargs, pretrained)
    if kind == "hf":
        from vitbench.zoo.hf import build_hf

        return build_hf(name, kwargs, pretrained)
    if kind not in ("file", "module"):
        return None
    factory = load_factory(name)
    skipped = _skipped(factory, kwargs)
    if skipped:
        warnings.warn(
            f"{name}: {', '.join(skipped)} not applied (the factory takes no such argument)",
            NotAppliedWarning,
            stacklevel=2,
        )
    given = {k: v for k, v in kwargs.items() if k not in skipped}
    if pretrained:
        given["pretrained"] = True
    try:
        model = factory(**given)
    except Exception as exc:
        raise VitbenchError(f"{name} failed: {first_line(exc)}") from exc
    if not isinstance(model, nn.Module):
        raise VitbenchError(
            f"{name} returned a value of type {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def not_applied(spec: ModelSpec) -> tuple[str, ...]:
    """The overrides of ``spec`` that its model's factory does not take (none for the others)."""
    if spec.module is not None or source_of(spec.name) not in ("file", "module"):
        return ()
    return _skipped(load_factory(spec.name), spec.build_kwargs())


def _skipped(factory: Callable[..., Any], kwargs: dict[str, Any]) -> tuple[str, ...]:
    return tuple(k for k in kwargs if not _takes(factory, k))


def _takes(factory: Callable[..., Any], key: str) -> bool:
    """Whether ``factory`` accepts keyword ``key`` (yes when its signature cannot be read)."""
    params = _parameters(factory)
    if params is None or any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return True
    return key in params and params[key].kind is not inspect.Parameter.POSITIONAL_ONLY


def _parameters(factory: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    """The factory's parameters; None when its signature cannot be read."""
    try:
        return dict(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        return None


def _torchvision(name: str, kwargs: dict[str, Any], pretrained: bool) -> nn.Module:
    """torchvision's model, with ``img_size`` where its constructor takes a size."""
    import torchvision.models as tvm

    short = name[len(TORCHVISION) :]
    kw = dict(kwargs)
    chans = kw.pop("in_chans", 3)
    if chans != 3:
        raise VitbenchError(
            f"{name} takes 3 input channels, not {chans} (for grey images give in_chans 3)"
        )
    img = kw.pop("img_size", None)
    key = _torchvision_size_key(short)
    if img is not None and key == "image_size":
        h, w = hw_pair(img)
        if h != w:
            raise VitbenchError(f"{name} takes square images, got img_size {img}")
        kw[key] = h
    elif img is not None and key == "input_size":
        kw[key] = hw_pair(img)
    weights = tvm.get_model_weights(short).DEFAULT if pretrained else None
    return tvm.get_model(short, weights=weights, **kw)


@functools.cache
def _torchvision_size_key(short: str) -> str | None:
    """The constructor keyword that sets a torchvision model's image size, if it has one."""
    import torchvision.models as tvm

    with torch.device("meta"):
        cls = type(tvm.get_model(short, weights=None))
    params = inspect.signature(cls.__init__).parameters
    return next((k for k in _TORCHVISION_SIZE_KEYS if k in params), None)


def hw_pair(size: int | tuple[int, ...] | list[int]) -> tuple[int, int]:
    """An image size as (height, width)."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[-1]))


def declared_defaults(name: str) -> dict[str, Any]:
    """``img_size`` and ``in_chans`` a spec's source declares without building: torchvision's
    default weights' crop size (read from their metadata, nothing downloaded), or a factory's
    signature defaults."""
    kind = source_of(name)
    if kind == "torchvision":
        import torchvision.models as tvm

        transforms = tvm.get_model_weights(name[len(TORCHVISION) :]).DEFAULT.transforms
        crop = getattr(transforms, "keywords", {}).get("crop_size")
        return {"img_size": crop} if crop else {}
    if kind not in ("file", "module"):
        return {}
    params = _parameters(load_factory(name)) or {}
    return {
        k: params[k].default
        for k in ("img_size", "in_chans")
        if k in params and isinstance(params[k].default, (int, tuple, list))
    }


def meta_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` on the meta device, made without copying its weights."""
    memo: dict[int, Any] = {}
    for p in module.parameters():
        memo[id(p)] = nn.Parameter(torch.empty_like(p, device="meta"), p.requires_grad)
    for b in module.buffers():
        memo[id(b)] = torch.empty_like(b, device="meta")
    return copy.deepcopy(module, memo).to("meta")


# -- factories --------------------------------------------------------------------------------


@functools.cache
def load_factory(name: str) -> Callable[..., Any]:
    """The callable ``path/to/file.py:attr`` or ``package.module:attr`` names; one-line errors
    for a missing file, a module that fails to import, a missing or uncallable attribute."""
    where, _, attr = name.rpartition(":")
    module = _load_file(where) if source_of(name) == "file" else _import(where)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            found = [a for a in dir(module) if callable(getattr(module, a)) and a[0] != "_"]
            close = difflib.get_close_matches(attr, found, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise VitbenchError(f"{where} has no attribute '{attr}'{hint}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise VitbenchError(
            f"{name} is an object of type {type(obj).__name__}, not a callable model factory"
        )
    return obj


def _load_file(where: str) -> Any:
    """Import a Python file as a module of its own (kept in ``sys.modules``)."""
    path = Path(where).expanduser().resolve()
    if not path.is_file():
        raise VitbenchError(f"model file not found: {where}")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
    module_name = f"vitbench_user_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise VitbenchError(f"cannot import {where}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise VitbenchError(f"cannot import {where}: {first_line(exc)}") from exc
    return module


# -- weights ----------------------------------------------------------------------------------


def check_available(name: str, pretrained: bool) -> None:
    """Fail fast, in one line, when what building ``name`` needs cannot be had offline:
    pretrained weights, or the config of an ``hf:`` or ``hf-hub:`` model."""
    from vitbench.zoo.weights import check_hub_files, check_pretrained_available

    kind = source_of(name)
    if kind == "hf":
        from vitbench.zoo import hf

        hf.check_available(name, pretrained)
    elif kind == "torchvision" and pretrained:
        _check_torchvision_cache(name)
    elif kind in ("file", "module") and pretrained:
        if not _takes(load_factory(name), "pretrained"):
            raise VitbenchError(
                f"{name} takes no pretrained argument: load its weights with a checkpoint"
            )
    elif kind == "hf-hub":
        repo = name.split(":", 1)[1].split("@")[0]
        check_hub_files(repo, ("config.json",), f"the config of {name}")
        if pretrained:
            files = ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin")
            check_hub_files(repo, files, f"pretrained weights for {name}")
    elif pretrained:
        check_pretrained_available(name)


def _check_torchvision_cache(name: str) -> None:
    """torchvision's default weights must be in the torch hub cache already."""
    import torchvision.models as tvm

    weights = tvm.get_model_weights(name[len(TORCHVISION) :]).DEFAULT
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)
    if not path.is_file():
        raise VitbenchError(
            f"torchvision's weights for {name} are not in the torch hub cache: expected "
            f"{path} (from {weights.url})"
        )
