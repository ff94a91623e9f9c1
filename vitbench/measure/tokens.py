"""``tokens``: the token positions entering a model's first attention layer, over the whole image.

That is the sequence length of a plain ViT (patches plus prefix tokens: 197 for ViT-B/16 at
224) and, for attention over windows or partitions (Swin, MaxViT, MobileViT's unfolded
patches), all windows together: the positions of that stage's feature map. It is read by a
forward pre-hook on the first attention layer to run, found by its class; see
docs/methodology/flops.md for the rules and the fallbacks.
"""

from __future__ import annotations

import re
from functools import partial
from typing import Any

import torch
from torch import nn

#: attention layers by class name: any with Attention or Attn in it (timm, torchvision, ours),
#: and these (XCiT's cross-covariance, ConViT's, EfficientViT's multi-scale linear attention)
_ATTENTION_NAMES = frozenset({"XCA", "GPSA", "MHSA", "LiteMLA"})
#: named so but not attention layers: blocks that hold one, attention-pooling heads, and gates
#: that reweight channels or positions without attending between tokens (timm's CBAM,
#: coordinate, split and selective-kernel attention)
_NOT_ATTENTION = re.compile(
    r"Block|^(Rot)?AttentionPool|^(Light)?(Channel|Spatial)Attn$|^(Simple)?CoordAttn$"
    r"|^(EfficientLocal|Strip|Split|SelectiveKernel)Attn$"
)


def is_attention(module: nn.Module) -> bool:
    """Whether ``module`` is an attention layer, by its class."""
    name = type(module).__name__
    return (
        isinstance(module, nn.MultiheadAttention)
        or name in _ATTENTION_NAMES
        or (re.search("Attention|Attn", name) is not None and not _NOT_ATTENTION.search(name))
    )


def outer_attention(model: nn.Module) -> dict[str, nn.Module]:
    """The attention layers not inside another one, by module name."""
    found: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if is_attention(module) and not any(name.startswith(f"{o}.") for o in found):
            found[name] = module
    return found


def _first_block(model: nn.Module) -> tuple[str, nn.Module] | None:
    for name, module in model.named_modules():
        if type(module).__name__.endswith("Block"):
            return name, module
    return None


def _channels(module: nn.Module) -> int | None:
    """The width a module reads: its first linear layer's inputs or convolution's channels."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            return m.in_features
        if isinstance(m, nn.modules.conv._ConvNd):
            return m.in_channels
    return None


def positions(x: object, channels: int | None, batch: int) -> int | None:
    """Token positions per sample in one layer input, all windows together: (B', N, C) ->
    B'/B x N; (B', H, W, C), or (B', C, H, W) when dim 1 is the layer's width ``channels``
    -> B'/B x H x W. B' is the batch B times the windows (or patch slots) seen at once."""
    if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
        return None
    windows = max(1, x.shape[0] // batch)
    if x.dim() == 3:
        return windows * int(x.shape[1])
    channels_first = x.shape[1] == channels and x.shape[-1] != channels
    h, w = x.shape[2:] if channels_first else x.shape[1:3]
    return windows * int(h) * int(w)


def _branches(x: object, channels: int | None, batch: int) -> int | None:
    """Parallel branches handed to one block as a list (CrossViT): their tokens added up."""
    if not isinstance(x, (list, tuple)) or len(x) < 2:
        return None
    parts = [positions(t, channels, batch) or 0 for t in x]
    return sum(parts) if all(parts) else None


class TokenReader:
    """Forward pre-hooks that read ``tokens`` while the model runs once: at the first attention
    layer to run, and at the first ``*Block`` (parallel branches; models with no attention)."""

    def __init__(self, model: nn.Module, batch: int) -> None:
        self.batch = batch
        self.seen: dict[str, tuple[int | None, str]] = {}  # kind -> (tokens, module name)
        watched = [("attention", name, m) for name, m in outer_attention(model).items()]
        block = _first_block(model)
        if block is not None:
            watched.append(("block", *block))
        self.hooks = [
            m.register_forward_pre_hook(partial(self._read, kind, name), with_kwargs=True)
            for kind, name, m in watched
        ]

    def _read(
        self, kind: str, name: str, module: nn.Module, args: tuple, kwargs: dict[str, Any]
    ) -> None:
        x = args[0] if args else next(iter(kwargs.values()), None)
        if isinstance(module, nn.MultiheadAttention) and not module.batch_first:
            x = x.transpose(0, 1) if isinstance(x, torch.Tensor) else x  # (N, B, E) -> (B, N, E)
        channels = _channels(module)
        if kind == "block" and (branches := _branches(x, channels, self.batch)):
            kind, tokens = "branches", branches
        else:
            tokens = positions(x, channels, self.batch)
        self.seen.setdefault(kind, (tokens, name))  # the first call of each kind

    def remove(self) -> None:
        for hook in self.hooks:
            hook.remove()

    def tokens(self, model: nn.Module) -> tuple[int | None, str | None]:
        """(tokens, the module read at): parallel branches at the first block, else the first
        attention layer, else the first block, else timm's patch count plus prefix tokens."""
        for kind in ("branches", "attention", "block"):
            tokens, name = self.seen.get(kind, (None, ""))
            if tokens:
                return tokens, name
        return _from_attributes(model)


def _from_attributes(model: nn.Module) -> tuple[int | None, str | None]:
    """Patches plus prefix tokens, as timm's attributes say, when no layer was read."""
    tokens = getattr(getattr(model, "patch_embed", None), "num_patches", None)
    if tokens is None:
        return None, None
    return tokens + getattr(model, "num_prefix_tokens", 0), "patch_embed"
