"""One place that turns a model spec into a ``torch.nn.Module``.

A spec is a timm model name, one of our aliases (``ViT-B/16``), a from-scratch model
(``scratch_vit_tiny_patch16_224``), or a name from another source (``torchvision:vit_b_16``,
``path/to/file.py:factory``, ``hf-hub:org/repo``: :mod:`vitbench.zoo.sources`; Hugging Face
``transformers`` models, ``hf:bert``: :mod:`vitbench.zoo.hf`), plus size overrides
(``img_size``, ``in_chans``, ``num_classes``) and architecture keyword overrides
(``patch_size=8,depth=6``). A spec may also carry a module built elsewhere, which it names
but never builds.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import fnmatch
import functools
import inspect
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from vitbench.errors import CheckpointError, UnknownModelError, VitbenchError
from vitbench.zoo import sources
from vitbench.zoo.aliases import alias_names, resolve_alias
from vitbench.zoo.registry import get_factory, scratch_names
from vitbench.zoo.weights import (
    SPEC_METADATA_KEY,
    check_fits,
    checkpoint_shapes,
    load_checkpoint,
    read_spec_metadata,
)

if TYPE_CHECKING:
    from vitbench.token_reduction import TokenReduction

#: keyword arguments a checkpoint's stored spec may set on any model: its shape
SHAPE_KEYS = frozenset(
    ("img_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depth", "num_heads")
    + ("mlp_ratio", "reg_tokens", "no_embed_class", "qk_norm", "window_size")  # timm's ViT, Swin
)
#: the fields of a stored spec (see :func:`spec_metadata`)
_SPEC_FIELDS = frozenset(("name", "img_size", "in_chans", "num_classes", "kwargs"))


@dataclass(frozen=True)
class ModelSpec:
    """What to build: a resolved name and the overrides that change its shape.

    ``input_size`` (C, H, W) is the input of a model that declares none (see
    :func:`default_input_size`); ``module``, a module built elsewhere that the spec names:
    :func:`create_model` hands it over (a copy on the meta device) instead of building one;
    ``reduction``, token merging or pruning that :func:`create_model` applies to the built
    model (:mod:`vitbench.token_reduction`).
    """

    name: str
    img_size: int | tuple[int, int] | None = None
    in_chans: int | None = None
    num_classes: int | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int, int] | None = None
    module: nn.Module | None = field(default=None, repr=False)
    reduction: TokenReduction | None = None

    def build_kwargs(self) -> dict[str, Any]:
        kw = dict(self.kwargs)
        if self.img_size is not None:
            kw["img_size"] = self.img_size
        if self.in_chans is not None:
            kw["in_chans"] = self.in_chans
        if self.num_classes is not None:
            kw["num_classes"] = self.num_classes
        return kw


def spec_metadata(spec: ModelSpec) -> dict[str, str]:
    """Safetensors metadata recording ``spec``, so the weights can be rebuilt by name alone."""
    import json

    fields = dict(
        name=spec.name,
        img_size=spec.img_size,
        in_chans=spec.in_chans,
        num_classes=spec.num_classes,
        kwargs=spec.kwargs,
    )
    return {SPEC_METADATA_KEY: json.dumps(fields, sort_keys=True)}


def with_checkpoint_spec(spec: ModelSpec, checkpoint: str | os.PathLike | None) -> ModelSpec:
    """Fill what ``spec`` leaves unset from the spec a vitbench checkpoint records.

    Sizes the user gives win, and so do their keyword overrides; a checkpoint of another model,
    or one that records no spec, leaves ``spec`` as it is. A stored spec with keys other than
    shapes (:func:`spec_kwarg_keys`) is refused: the file is not trusted to set options.
    """
    stored = read_spec_metadata(checkpoint) if checkpoint is not None else None
    if not stored:
        return spec
    _check_stored_spec(stored, checkpoint)
    if stored.get("name") != spec.name:
        return spec
    img = stored.get("img_size")
    return dataclasses.replace(
        spec,
        img_size=spec.img_size
        if spec.img_size is not None
        else (tuple(img) if isinstance(img, list) else img),
        in_chans=spec.in_chans if spec.in_chans is not None else stored.get("in_chans"),
        num_classes=(
            spec.num_classes if spec.num_classes is not None else stored.get("num_classes")
        ),
        kwargs={**stored.get("kwargs", {}), **spec.kwargs},
    )


@functools.cache
def spec_kwarg_keys() -> frozenset[str]:
    """Keys a stored spec may set: :data:`SHAPE_KEYS`, the from-scratch models' arguments and
    the config keys that shape an ``hf:`` model."""
    from vitbench.zoo.hf import HF_SPEC_KEYS
    from vitbench.zoo.scratch import bert, mlp, transformer, vit

    keys = set(SHAPE_KEYS) | HF_SPEC_KEYS
    for cls in (vit.VisionTransformer, bert.Bert, mlp.MLP, transformer.Transformer):
        keys.update(list(inspect.signature(cls.__init__).parameters)[1:])
    return frozenset(keys)


def _check_stored_spec(stored: Any, path: Any) -> None:
    """Refuse a stored spec with unknown fields or keys, or values other than plain ones."""
    if not isinstance(stored, dict) or not isinstance(stored.get("kwargs", {}), dict):
        raise CheckpointError(f"checkpoint {path} records a model spec that is not a mapping")
    kwargs = stored.get("kwargs", {})
    bad = sorted((set(stored) - _SPEC_FIELDS) | (set(kwargs) - spec_kwarg_keys()))
    if bad:
        raise CheckpointError(
            f"checkpoint {path} records a model spec with keys vitbench does not accept: "
            f"{', '.join(bad)} (only shape keys such as {', '.join(sorted(SHAPE_KEYS))})"
        )
    values = {**{k: v for k, v in stored.items() if k != "kwargs"}, **kwargs}
    odd = sorted(k for k, v in values.items() if not _plain(v))
    if odd:
        raise CheckpointError(
            f"checkpoint {path} records a model spec with values that are not plain: "
            + ", ".join(odd)
        )


def _plain(value: Any) -> bool:
    """A JSON scalar, or a short list of integers (an image size)."""
    if isinstance(value, list):
        return len(value) <= 3 and all(isinstance(v, int) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _timm_names() -> list[str]:
    import timm

    return timm.list_models()


def known_names() -> list[str]:
    """Every name a spec may use: timm models, our from-scratch models and torchvision's
    classifiers (``torchvision:NAME``); aliases, factories and hf-hub names aside."""
    return sorted(set(_timm_names()) | set(scratch_names()) | set(sources.torchvision_names()))


def resolve_name(name: str) -> str:
    """Map an alias or exact name to the canonical model name, or raise with suggestions.

    torchvision, factory, hf and hf-hub specs are checked and kept as written
    (:func:`vitbench.zoo.sources.resolve_source`).
    """
    if get_factory(name) is not None:
        return name
    source = sources.resolve_source(name)
    if source is not None:
        return source
    import timm

    if timm.is_model(name):
        return name
    target = resolve_alias(name)
    if target is not None:
        return target
    pool = known_names() + alias_names()
    close = difflib.get_close_matches(name.lower(), pool, n=3, cutoff=0.6)
    if not close:  # fall back to names sharing the first word, e.g. 'vit' or 'swin'
        stem = name.lower().replace("-", "_").split("_")[0]
        close = [n for n in pool if n.startswith(stem)][:3]
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UnknownModelError(f"unknown model '{name}'{hint} (see `vitbench models`)")


def expand_names(patterns: Iterable[str]) -> list[str]:
    """Resolve names and expand globs (``vit_*``) against timm's and our registries."""
    out: list[str] = []
    for pat in patterns:
        if any(ch in pat for ch in "*?["):
            hits = [n for n in known_names() if fnmatch.fnmatch(n, pat)]
            if not hits:
                raise UnknownModelError(f"no model matches '{pat}' (see `vitbench models`)")
            out.extend(hits)
        else:
            out.append(resolve_name(pat))
    return list(dict.fromkeys(out))


def list_models(pattern: str | None = None) -> list[str]:
    """Model names matching a glob, or containing a pattern without wildcards (all when None)."""
    from vitbench.model_index import matching

    return matching(known_names(), pattern)


def create_model(
    spec: ModelSpec | str,
    *,
    device: str | torch.device = "cpu",
    pretrained: bool = False,
    checkpoint: str | os.PathLike | None = None,
) -> nn.Module:
    """Build the model a spec names, in eval mode, on ``device`` (``"meta"`` for no weights).

    Random init by default; ``checkpoint`` loads a local file as weights only, after its tensor
    shapes are checked against the model built on the meta device (so a file cannot make
    vitbench allocate a model it does not fit); ``pretrained`` asks timm (or torchvision,
    transformers, the factory) for published weights (error at once when neither a cache nor a
    network has them). A spec's built ``module`` is moved to ``device`` (copied to the meta
    device). The spec's token ``reduction`` is applied last, to the model with its weights (to
    a copy of a built module: the caller's stays as it was).
    """
    if isinstance(spec, str):
        spec = ModelSpec(resolve_name(spec))
    dev = torch.device(device)
    if spec.module is not None:
        module = spec.module
        if _reduces(spec) and dev.type != "meta":
            module = copy.deepcopy(module)
        built = _built(module, dev, pretrained or checkpoint is not None)
        return _reduced(built, spec)
    spec = with_checkpoint_spec(spec, checkpoint)
    factory = get_factory(spec.name)
    if (pretrained or checkpoint) and dev.type == "meta":
        raise VitbenchError("weights cannot be loaded on the meta device")
    if pretrained and factory is not None:
        raise VitbenchError(f"{spec.name} is a from-scratch model: it has no pretrained weights")
    sources.check_available(spec.name, pretrained)
    if checkpoint is not None:
        check_fits(_build(spec, torch.device("meta")), checkpoint_shapes(checkpoint), checkpoint)
    model = _build(spec, dev, pretrained)
    if checkpoint is not None:
        load_checkpoint(model, Path(checkpoint))
    return _reduced(model, spec).eval()


def _reduces(spec: ModelSpec) -> bool:
    return spec.reduction is not None and spec.reduction.active


def _reduced(model: nn.Module, spec: ModelSpec) -> nn.Module:
    """``model`` with the spec's token merging or pruning applied in place (when it has any)."""
    if _reduces(spec):
        from vitbench.token_reduction import apply_token_reduction

        apply_token_reduction(model, spec.reduction, model_name=spec.name)
    return model


def _built(module: nn.Module, dev: torch.device, weights: bool) -> nn.Module:
    """A module built elsewhere, on ``dev``: it has its weights, and none can be loaded."""
    if weights:
        raise VitbenchError(
            "a built module carries its own weights; pretrained and checkpoint apply to a "
            "model name"
        )
    return (sources.meta_copy(module) if dev.type == "meta" else module.to(dev)).eval()


def _build(spec: ModelSpec, dev: torch.device, pretrained: bool = False) -> nn.Module:
    """The module a spec names on ``dev``; options it cannot take are one-line errors."""
    kwargs = spec.build_kwargs()
    try:
        with torch.device(dev):
            model = _construct(spec.name, kwargs, pretrained)
    except (TypeError, AssertionError, ValueError, RuntimeError) as exc:
        problem = _kwarg_type_problem(spec.name, kwargs)
        if problem:
            raise VitbenchError(f"{spec.name}: {problem}") from exc
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, TypeError):
            raise VitbenchError(f"{spec.name} does not accept these options: {msg}") from exc
        raise VitbenchError(f"cannot build {spec.name} with {kwargs or 'defaults'}: {msg}") from exc
    _check_patch_fits(spec.name, model)
    return model


def _construct(name: str, kwargs: dict[str, Any], pretrained: bool) -> nn.Module:
    """Call our factory, another source's or timm's with ``kwargs`` (on the current default
    device)."""
    factory = get_factory(name)
    if factory is not None:
        return factory(**kwargs)
    model = sources.construct(name, kwargs, pretrained)
    if model is not None:
        return model
    import timm

    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except TypeError as exc:
        # size-agnostic models (PVT-v2) take no img_size: the input decides
        if "img_size" not in str(exc) or "img_size" not in kwargs:
            raise
        kwargs = {k: v for k, v in kwargs.items() if k != "img_size"}
        return timm.create_model(name, pretrained=pretrained, **kwargs)


def _kwarg_type_problem(name: str, kwargs: dict[str, Any]) -> str | None:
    """'depth wants an int, got 'abc'' for the first keyword whose type differs from its
    default's in the model class's signature; None when none does (or the class is unknown)."""
    try:
        with torch.device("meta"):
            cls = type(_construct(name, {}, pretrained=False))
        params = inspect.signature(cls.__init__).parameters
    except Exception:  # no class to compare against: keep the original error
        return None
    for key, value in kwargs.items():
        default = params[key].default if key in params else None
        if default is None or default is inspect.Parameter.empty:
            continue
        wanted = float if isinstance(default, float) else type(default)
        if not isinstance(value, (wanted, int) if wanted is float else wanted):
            return f"model kwarg {key} wants {wanted.__name__}, got {value!r}"
    return None


def _check_patch_fits(name: str, model: nn.Module) -> None:
    """Refuse an image smaller than one patch (timm builds it and fails deep in a conv)."""
    embed = getattr(model, "patch_embed", None)
    img, patch = getattr(embed, "img_size", None), getattr(embed, "patch_size", None)
    if not (isinstance(img, tuple) and isinstance(patch, tuple) and len(img) == len(patch)):
        return
    if any(i < p for i, p in zip(img, patch, strict=True)):
        p = max(patch)
        raise VitbenchError(
            f"{name}: img_size {min(img)} is smaller than one patch: a {p}-pixel patch is "
            f"larger than the image; for patch_size {p} the smallest img_size is {p}"
        )


def default_input_size(model: nn.Module, spec: ModelSpec) -> tuple[int, int, int]:
    """(channels, height, width) of one input: ``img_size`` and ``in_chans`` where the model
    takes them, else ``input_size``, else what the model declares (timm's config, its patch
    embedding, torchvision's image size, a factory's defaults); an error when nothing does."""
    skipped = sources.not_applied(spec)
    given = spec.input_size
    declared = _declared(model, spec)
    if spec.in_chans is not None and "in_chans" not in skipped:
        chans = spec.in_chans
    else:
        chans = given[0] if given else declared.get("in_chans", 3)
    if spec.img_size is not None and "img_size" not in skipped:
        hw = sources.hw_pair(spec.img_size)
    elif given:
        hw = (given[1], given[2])
    elif "img_size" in declared:
        hw = sources.hw_pair(declared["img_size"])
    else:
        raise VitbenchError(
            f"{spec.name} declares no input size: input_size (channels, height, width) is required"
        )
    return (int(chans), int(hw[0]), int(hw[1]))


def _declared(model: nn.Module, spec: ModelSpec) -> dict[str, Any]:
    """``img_size`` and ``in_chans`` as the built model says, else as its source declares."""
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    out = dict(sources.declared_defaults(spec.name)) if spec.module is None else {}
    if "input_size" in cfg:
        out.update(in_chans=cfg["input_size"][0], img_size=tuple(cfg["input_size"][1:]))
    for attr in ("image_size", "img_size"):  # torchvision's ViT; hand-written models
        if isinstance(getattr(model, attr, None), (int, tuple)):
            out["img_size"] = getattr(model, attr)
    img = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if img is not None:
        out["img_size"] = img
    if isinstance(getattr(model, "in_chans", None), int):
        out["in_chans"] = model.in_chans
    return out


def set_fused_attn(model: nn.Module, fused: bool | None) -> bool | None:
    """Switch timm's fused attention on built modules; returns the setting in force."""
    flags = [m for m in model.modules() if hasattr(m, "fused_attn")]
    if fused is not None:
        for m in flags:
            m.fused_attn = fused
    if not flags:
        return None
    return all(bool(m.fused_attn) for m in flags)
