"""Attention weights per layer, read out of a model while it runs, without changing its output.

timm computes attention with a fused kernel that never materialises the weights, so there is
nothing to hook. Each attention module is read by one of four readers, chosen from its class and
attributes by ``_reader_for`` (the first that fits, in this order) and installed by
``AttentionExtractor._install``:

* ``recompute``: timm's standard ``Attention`` (ViT, DeiT, CrossViT's self-attention): a forward
  hook recomputes softmax(q k^T / sqrt(d)) from the module's own ``qkv`` projection, q/k norms,
  scale and mask. The forward itself is untouched, so the output is bit for bit the same.
* ``keep_attn``: vitbench's own attention (a class named ``...Attention`` with a ``keep_attn``
  flag): the flag is set while extracting, and the softmax the module then keeps in
  ``last_attn`` is read and cleared after its forward.
* ``talking_heads``: a module with a linear ``proj_w`` (CaiT's talking-heads attention), which
  mixes the heads' softmaxes before they weight the values; the mixed rows need not be
  non-negative or sum to one, so the input of ``proj_w``, each head's own softmax, is read.
* ``unfused``: any other class named ``...Attention`` or ``...Attn`` with an ``nn.Dropout``
  ``attn_drop`` (BEiT, CaiT's class attention, CrossViT's cross attention, PVT-v2, Swin): fused
  attention is switched off while extracting (where the module has a ``fused_attn`` flag) and
  ``attn_drop``'s input is read. The module then runs its own explicit path, which equals the
  fused kernel to float rounding (about 1e-6).

A module inside one already read is not read again. Leaving the extractor removes the hooks and
restores every flag it set.

Weights reach a callback one layer at a time, as (batch, heads, queries, keys) float32, so a
caller reduces them as they come and never holds every map.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vitbench.errors import VitbenchError


@dataclass
class AttentionLayer:
    """One attention module of a model, in module order."""

    index: int
    name: str
    module: nn.Module
    num_heads: int
    reader: str  # "recompute" | "talking_heads" | "unfused" | "keep_attn"


OnAttention = Callable[[AttentionLayer, torch.Tensor], None]


def _timm_attention_class() -> type | None:
    try:
        from timm.layers.attention import Attention
    except ImportError:  # pragma: no cover - timm is a dependency; kept for older layouts
        return None
    return Attention


def _reader_for(module: nn.Module) -> str | None:
    if type(module) is _timm_attention_class():
        return "recompute"
    if hasattr(module, "keep_attn") and type(module).__name__.endswith("Attention"):
        return "keep_attn"
    if isinstance(getattr(module, "proj_w", None), nn.Linear):
        return "talking_heads"
    if type(module).__name__.endswith(("Attention", "Attn")) and isinstance(
        getattr(module, "attn_drop", None), nn.Dropout
    ):
        return "unfused"
    return None


def find_attention_layers(model: nn.Module, model_name: str | None = None) -> list[AttentionLayer]:
    """Every attention module the readers understand, in module order; an error when none."""
    layers: list[AttentionLayer] = []
    taken: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(t + ".") for t in taken):
            continue
        reader = _reader_for(module)
        if reader is None:
            continue
        heads = getattr(module, "num_heads", None)
        if heads is None:
            raise VitbenchError(
                f"cannot read attention of {model_name or type(model).__name__}: "
                f"{name} ({type(module).__name__}) has no num_heads"
            )
        layers.append(AttentionLayer(len(layers), name, module, int(heads), reader))
        taken.append(name)
    if not layers:
        kinds = sorted(
            {type(m).__name__ for m in model.modules() if "attn" in type(m).__name__.lower()}
        )
        seen = f" (attention-like modules found: {', '.join(kinds)})" if kinds else ""
        raise VitbenchError(
            f"cannot read attention weights from {model_name or type(model).__name__}: "
            f"no attention module of a kind vitbench reads{seen}"
        )
    return layers


def recompute_timm_attention(
    module: nn.Module,
    x: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + mask) of timm's ``Attention`` from its own projections.

    x: (B, N, C) -> (B, heads, N, N), as the module's unfused path computes it.
    """
    from timm.layers.attention import maybe_add_mask, resolve_self_attn_mask

    b, n, _ = x.shape
    qkv = module.qkv(x).reshape(b, n, 3, module.num_heads, module.head_dim).permute(2, 0, 3, 1, 4)
    q, k, _v = qkv.unbind(0)  # each (B, heads, N, head_dim)
    q, k = module.q_norm(q), module.k_norm(k)
    scores = (q * module.scale) @ k.transpose(-2, -1)  # (B, heads, N, N)
    scores = maybe_add_mask(scores, resolve_self_attn_mask(n, scores, attn_mask, is_causal))
    return scores.softmax(dim=-1)


@dataclass
class AttentionExtractor:
    """While entered, every forward of ``model`` hands each layer's weights to ``on_attention``.

    Use :meth:`run` for a forward that also checks that every layer was read.
    """

    model: nn.Module
    on_attention: OnAttention
    model_name: str | None = None
    layers: list[AttentionLayer] = field(init=False)
    _handles: list[Any] = field(init=False, default_factory=list)
    _restore: list[tuple[nn.Module, str, Any]] = field(init=False, default_factory=list)
    _seen: set[int] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.layers = find_attention_layers(self.model, self.model_name)

    def _emit(self, layer: AttentionLayer, weights: torch.Tensor) -> None:
        self._seen.add(layer.index)
        self.on_attention(layer, weights.detach().float())

    def _set(self, module: nn.Module, attr: str, value: Any) -> None:
        self._restore.append((module, attr, getattr(module, attr)))
        setattr(module, attr, value)

    def __enter__(self) -> AttentionExtractor:
        try:
            for layer in self.layers:
                self._install(layer)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _install(self, layer: AttentionLayer) -> None:
        mod = layer.module
        if layer.reader == "recompute":

            def hook(module, args, kwargs, _out, layer=layer):
                x = args[0] if args else kwargs["x"]
                with torch.no_grad():
                    w = recompute_timm_attention(
                        module, x, kwargs.get("attn_mask"), kwargs.get("is_causal", False)
                    )
                self._emit(layer, w)

            self._handles.append(mod.register_forward_hook(hook, with_kwargs=True))
        elif layer.reader == "keep_attn":
            self._set(mod, "keep_attn", True)

            def hook(module, _args, _out, layer=layer):
                w = getattr(module, "last_attn", None)
                if w is not None:
                    module.last_attn = None  # do not keep the map alive after reading it
                    self._emit(layer, w)

            self._handles.append(mod.register_forward_hook(hook))
        elif layer.reader == "talking_heads":

            def pre_hook(_proj_w, args, layer=layer):
                self._emit(layer, args[0].permute(0, 3, 1, 2))  # (B, N, N, H) -> (B, H, N, N)

            self._handles.append(mod.proj_w.register_forward_pre_hook(pre_hook))
        else:
            if hasattr(mod, "fused_attn"):
                self._set(mod, "fused_attn", False)

            def hook(_drop, args, _out, layer=layer):
                self._emit(layer, args[0])  # dropout's input: the weights before any drop

            self._handles.append(mod.attn_drop.register_forward_hook(hook))

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for module, attr, value in reversed(self._restore):
            setattr(module, attr, value)
        self._restore.clear()

    def run(self, x: torch.Tensor) -> Any:
        """model(x), checking that every attention layer handed over its weights."""
        self._seen.clear()
        out = self.model(x)
        missing = [layer.name for layer in self.layers if layer.index not in self._seen]
        if missing:
            who = self.model_name or type(self.model).__name__
            raise VitbenchError(
                f"cannot read attention weights from {who}: "
                f"layers {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} ran without "
                "exposing them"
            )
        return out


def extract_attention(
    model: nn.Module, x: torch.Tensor, model_name: str | None = None
) -> tuple[Any, list[torch.Tensor]]:
    """One forward: the model's output and every layer's (B, heads, Nq, Nk) weights.

    Returned in module order; holds all maps at once, so it is for a few images: analyses
    reduce through the callback instead.
    """
    maps: dict[int, torch.Tensor] = {}
    with (
        torch.no_grad(),
        AttentionExtractor(model, lambda layer, w: maps.update({layer.index: w}), model_name) as ex,
    ):
        out = ex.run(x)
    return out, [maps[i] for i in sorted(maps)]
