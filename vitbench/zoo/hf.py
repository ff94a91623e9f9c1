"""Hugging Face ``transformers`` models as a model source: ``hf:NAME``.

NAME is a model type whose default configuration transformers ships (``hf:bert`` is BERT-base,
``hf:vit`` ViT-B/16: ``AutoConfig.for_model``; works offline), or a hub repo id
(``hf:bert-base-uncased``, ``hf:google/vit-base-patch16-224``) whose ``config.json`` comes from
the Hugging Face cache, else from one attempt at the hub when it answers within seconds, else a
one-line error. A type wins over a repo of the same name (``hf:gpt2`` is the type).

Built (random init from torch's RNG; ``pretrained`` loads a repo's weights, cache first):

- a text model (a config with ``vocab_size`` and no ``image_size``):
  ``AutoModelForSequenceClassification``, or ``AutoModel`` for 0 classes, in :class:`HFTextModel`;
- a vision model (``image_size``): ``AutoModelForImageClassification`` or ``AutoModel``, in
  :class:`HFVisionModel`.

Overrides: ``num_classes`` sets ``num_labels`` (0: no head, the pooled output instead),
``img_size`` ``image_size``, ``in_chans`` ``num_channels``; ``seq_len`` is a text model's example
length (at most its positions, all of them by default); ``attn_implementation`` is "eager" or
"sdpa" (transformers' default otherwise); any other keyword sets the config attribute of its
name, and a name the config lacks is an error.

transformers is imported only when an ``hf:`` model is used: it is an optional extra.
"""

from __future__ import annotations

import copy
import difflib
import functools
from typing import Any

import torch
from torch import Tensor, nn

from vitbench.errors import UnknownModelError, VitbenchError
from vitbench.zoo.sources import first_line, hw_pair
from vitbench.zoo.weights import check_hub_files, hub_reachable

HF_PREFIX = "hf:"
#: attention implementations a model kwarg may choose
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")
#: model kwargs a vitbench checkpoint's stored spec may set on an hf: model: its shape, and the
#: attention implementation (checked against ATTN_IMPLEMENTATIONS)
HF_SPEC_KEYS = frozenset(
    ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    + ("image_size", "num_channels", "vocab_size", "type_vocab_size", "max_position_embeddings")
    + ("seq_len", "attn_implementation")
)
#: example length of a text model whose config sets no position limit
DEFAULT_SEQ_LEN = 128
#: files of a hub repo any one of which holds its weights
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def is_hf(name: str) -> bool:
    """Whether a model name is an ``hf:`` name."""
    return name.startswith(HF_PREFIX)


def _short(name: str) -> str:
    return name[len(HF_PREFIX) :]


def _transformers() -> Any:
    """The transformers package, or a one-line error saying how to install it."""
    try:
        import transformers
    except ImportError as exc:
        raise VitbenchError(
            "hf: models need the transformers package: pip install 'vitbench[hf]'"
        ) from exc
    return transformers


def is_model_type(name: str) -> bool:
    """Whether ``hf:NAME`` names a model type (a default config) rather than a hub repo."""
    return _short(name) in _transformers().CONFIG_MAPPING


# -- the config -------------------------------------------------------------------------------


def hf_config(name: str) -> Any:
    """A fresh copy of the config ``hf:NAME`` names; one-line errors when it cannot be had."""
    return copy.deepcopy(_config(name))


@functools.cache
def _config(name: str) -> Any:
    short = _short(name)
    if not short:
        raise UnknownModelError("hf: takes a model type or a hub repo id, e.g. hf:bert")
    tf = _transformers()
    if short in tf.CONFIG_MAPPING:
        return tf.AutoConfig.for_model(short)
    return _hub_config(name, short)


def _hub_config(name: str, repo: str) -> Any:
    """A hub repo's config: from the cache, else one attempt at the hub if it answers."""
    from huggingface_hub import constants

    auto = _transformers().AutoConfig
    try:
        return auto.from_pretrained(repo, local_files_only=True)
    except OSError:
        pass  # not in the cache
    except Exception as exc:  # in the cache but unreadable, or not a repo id at all
        raise UnknownModelError(f"{name}: {_not_a_type(repo)}{first_line(exc)}") from exc
    if not hub_reachable():
        raise UnknownModelError(
            f"{name}: {_not_a_type(repo)}no config for {repo} in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) and the hub is unreachable"
        )
    try:
        return auto.from_pretrained(repo)
    except Exception as exc:
        raise UnknownModelError(
            f"{name}: {_not_a_type(repo)}cannot read its config from the hub: {first_line(exc)}"
        ) from exc


def _not_a_type(repo: str) -> str:
    """For a repo id without an owner, that it is no model type, with the closest types."""
    if "/" in repo:
        return ""
    types = list(_transformers().CONFIG_MAPPING.keys())
    close = difflib.get_close_matches(repo.lower(), types, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"not a model type transformers ships{hint}, and "


def check_available(name: str, pretrained: bool) -> None:
    """Fail fast, in one line, when the config or (``pretrained``) the weights of ``hf:NAME``
    are neither in the Hugging Face cache nor on a reachable hub."""
    _config(name)
    if not pretrained:
        return
    if is_model_type(name):
        raise VitbenchError(
            f"{name} is a default config without weights: for pretrained weights name a hub "
            "repo, e.g. hf:bert-base-uncased"
        )
    check_hub_files(_short(name), WEIGHT_FILES, f"pretrained weights for {name}")


def hf_tokenizer(name: str) -> Any:
    """The tokenizer of hub repo ``hf:NAME`` from the cache (or a reachable hub); None for a
    model type, and when neither has one."""
    if not is_hf(name) or is_model_type(name):
        return None
    auto = _transformers().AutoTokenizer
    try:
        return auto.from_pretrained(_short(name), local_files_only=True)
    except Exception:  # not in the cache: transformers raises several types
        pass
    if not hub_reachable():
        return None
    try:
        return auto.from_pretrained(_short(name))
    except Exception:
        return None


# -- the model --------------------------------------------------------------------------------


class HFModel(nn.Module):
    """A transformers model behind vitbench's interface.

    ``hf``: the wrapped module; ``config``: its config; ``num_classes``: 0 means no head;
    ``input_kind``: "tokens" or "image"; ``max_positions``: the most tokens a text model takes
    (None for vision); ``seq_len``: a text model's example length (None for vision).
    """

    input_kind = ""
    max_positions: int | None = None
    seq_len: int | None = None

    def __init__(self, hf: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.hf, self.config, self.num_classes = hf, hf.config, num_classes

    def _head(self, out: Any) -> Tensor:
        """logits (B, num_classes); without a head the pooled output (B, D): the pooler's
        where the model has one, else the last hidden state of the first token."""
        if self.num_classes > 0:
            return out.logits
        pooled = getattr(out, "pooler_output", None)
        return out.last_hidden_state[:, 0] if pooled is None else pooled


class HFTextModel(HFModel):
    """A text encoder: token ids in, logits or the pooled [CLS] state out."""

    input_kind = "tokens"

    def __init__(self, hf: nn.Module, num_classes: int, seq_len: int | None, name: str) -> None:
        super().__init__(hf, num_classes)
        self.vocab_size = int(hf.config.vocab_size)
        self.max_positions = _max_positions(hf)
        self.seq_len = seq_len if seq_len is not None else self.max_positions or DEFAULT_SEQ_LEN
        top = self.max_positions
        if not 0 < self.seq_len <= (top or self.seq_len):
            within = f"in 1..{top} (the positions the model has)" if top else "1 or more"
            raise VitbenchError(f"{name}: seq_len must be {within}, got {self.seq_len}")

    def forward(
        self,
        input_ids: Tensor,
        token_type_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
    ) -> Tensor:
        """input_ids, token_type_ids, attention_mask (B, N) -> (B, num_classes) or (B, D)."""
        given = {"token_type_ids": token_type_ids, "attention_mask": attention_mask}
        extra = {k: v for k, v in given.items() if v is not None}  # not every model takes them
        return self._head(self.hf(input_ids=input_ids, **extra))

    def example_inputs(
        self, batch_size: int, device: torch.device | str | None = None
    ) -> tuple[Tensor]:
        """Random token ids (B, seq_len)."""
        device = next(self.parameters()).device if device is None else device
        return (torch.randint(0, self.vocab_size, (batch_size, self.seq_len), device=device),)


class HFVisionModel(HFModel):
    """A vision model: images in, logits or the pooled output out; ``img_size`` and
    ``in_chans`` from its config (its input size)."""

    input_kind = "image"

    def __init__(self, hf: nn.Module, num_classes: int) -> None:
        super().__init__(hf, num_classes)
        size = hf.config.image_size
        self.img_size = size if isinstance(size, int) else tuple(size)
        self.in_chans = int(getattr(hf.config, "num_channels", 3))

    def forward(self, pixel_values: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, num_classes) or (B, D)."""
        return self._head(self.hf(pixel_values=pixel_values))


def _max_positions(hf: nn.Module) -> int | None:
    """``max_position_embeddings``, less the positions below a padding index that RoBERTa's
    family skips (its ids start after it); None when the config sets no limit."""
    limit = getattr(hf.config, "max_position_embeddings", None)
    if limit is None:
        return None
    table = getattr(getattr(hf.base_model, "embeddings", None), "position_embeddings", None)
    pad = getattr(table, "padding_idx", None)
    return int(limit) - (0 if pad is None else pad + 1)


def build_hf(name: str, kwargs: dict[str, Any], pretrained: bool) -> HFModel:
    """The model ``hf:NAME`` names with a spec's overrides, on the current default device."""
    config = hf_config(name)
    kw = dict(kwargs)
    impl = kw.pop("attn_implementation", None)
    if impl is not None and impl not in ATTN_IMPLEMENTATIONS:
        raise VitbenchError(
            f"{name}: attn_implementation is one of {', '.join(ATTN_IMPLEMENTATIONS)}, not {impl!r}"
        )
    num_classes = kw.pop("num_classes", None)
    kind = _input_kind(name, config)
    seq_len = _apply_sizes(name, config, kind, kw)
    _set_attributes(name, config, kw)
    if num_classes is not None and num_classes < 0:
        raise VitbenchError(f"{name}: num_classes must be 0 or more, got {num_classes}")
    if num_classes:
        config.num_labels = num_classes
    classes = config.num_labels if num_classes is None else num_classes
    model = _instantiate(_auto_class(kind, classes > 0), name, config, impl, pretrained)
    if kind == "tokens":
        return HFTextModel(model, classes, seq_len, name)
    return HFVisionModel(model, classes)


def _input_kind(name: str, config: Any) -> str:
    """The input kind: "image" for a config with ``image_size``, else "tokens" for one with
    ``vocab_size``; an encoder-decoder or a config with neither is an error."""
    if getattr(config, "is_encoder_decoder", False):
        raise VitbenchError(
            f"{name} is an encoder-decoder: vitbench builds text encoders and vision models"
        )
    if hasattr(config, "image_size"):
        return "image"
    if hasattr(config, "vocab_size"):
        return "tokens"
    raise VitbenchError(
        f"{name}: its {config.model_type} config has neither vocab_size (a text model) nor "
        "image_size (a vision model), the two kinds vitbench builds"
    )


def _apply_sizes(name: str, config: Any, kind: str, kw: dict[str, Any]) -> int | None:
    """Put ``img_size`` and ``in_chans`` (popped from ``kw``) in a vision config; return a text
    model's ``seq_len``. A size the model's kind has no use for is an error."""
    img, chans, seq_len = (kw.pop(k, None) for k in ("img_size", "in_chans", "seq_len"))
    given = {"img_size": img, "in_chans": chans} if kind == "tokens" else {"seq_len": seq_len}
    wrong = [k for k, v in given.items() if v is not None]
    if wrong:
        what = "text" if kind == "tokens" else "vision"
        raise VitbenchError(f"{name} is a {what} model: {', '.join(wrong)} does not apply")
    if chans is not None:
        if not hasattr(config, "num_channels"):
            raise VitbenchError(f"{name}: its config sets no num_channels for in_chans")
        config.num_channels = chans
    if img is not None:
        h, w = hw_pair(img)
        config.image_size = h if h == w else (h, w)
    patch = getattr(config, "patch_size", None)
    if kind == "image" and isinstance(patch, int) and min(hw_pair(config.image_size)) < patch:
        raise VitbenchError(
            f"{name}: img_size {config.image_size} is smaller than one {patch}-pixel patch"
        )
    return seq_len


def _set_attributes(name: str, config: Any, kw: dict[str, Any]) -> None:
    """Each model kwarg sets the config attribute of its name, of the default's type."""
    known = config.to_dict()
    for key, value in kw.items():
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise VitbenchError(f"{name}: its config has no attribute '{key}'{hint}")
        old = known[key]
        if isinstance(old, (bool, int, float, str)) and not _same_kind(old, value):
            raise VitbenchError(
                f"{name}: model kwarg {key} wants {type(old).__name__}, got {value!r}"
            )
        setattr(config, key, value)


def _same_kind(old: Any, value: Any) -> bool:
    """A value of the default's type (an int where a float is)."""
    if isinstance(old, bool) or isinstance(value, bool):
        return isinstance(old, bool) and isinstance(value, bool)
    if isinstance(old, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(old))


def _auto_class(kind: str, head: bool) -> Any:
    tf = _transformers()
    if not head:
        return tf.AutoModel
    if kind == "tokens":
        return tf.AutoModelForSequenceClassification
    return tf.AutoModelForImageClassification


def _instantiate(auto: Any, name: str, config: Any, impl: str | None, pretrained: bool) -> Any:
    """``auto``'s model of ``config``: random init, or the repo's weights."""
    kw = {} if impl is None else {"attn_implementation": impl}
    if config.architectures is None:
        config.architectures = []  # transformers iterates it to choose among classes (DeiT)
    try:
        if not pretrained:
            return auto.from_config(config, **kw)
        return _pretrained(auto, name, config, kw)
    except ValueError as exc:  # a config class without such a model, an impossible shape
        raise VitbenchError(f"cannot build {name}: {first_line(exc)}") from exc


def _pretrained(auto: Any, name: str, config: Any, kw: dict[str, Any]) -> Any:
    """The repo's weights in ``config``'s model, float32: from the cache, else one attempt at
    a reachable hub. A head of another size than the checkpoint's is initialised anew."""
    load = functools.partial(
        auto.from_pretrained, _short(name), config=config, ignore_mismatched_sizes=True, **kw
    )
    try:
        return load(local_files_only=True).float()
    except OSError as exc:
        missing = first_line(exc)
    if not hub_reachable():
        raise VitbenchError(
            f"pretrained weights for {name} are not in the Hugging Face cache and the hub is "
            f"unreachable ({missing})"
        )
    try:
        return load().float()
    except OSError as exc:
        raise VitbenchError(
            f"cannot load pretrained weights for {name}: {first_line(exc)}"
        ) from exc
