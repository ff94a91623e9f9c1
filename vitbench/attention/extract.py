"""Attention weights per layer, read out of a model while it runs, without changing its output.

timm computes attention with a fused kernel that never materialises the weights, so there is
nothing to hook. Each attention layer is read by one of seven readers. Five are chosen from a
module's class and attributes by ``_reader_for`` (the first that fits, in this order) and
installed by ``AttentionExtractor._install``:

* ``recompute``: timm's standard ``Attention`` (ViT, DeiT, CrossViT's self-attention): a forward
  hook recomputes softmax(q k^T / sqrt(d)) from the module's own ``qkv`` projection, q/k norms,
  scale and mask. The forward itself is untouched, so the output is bit for bit the same.
* ``mha``: ``torch.nn.MultiheadAttention`` (torchvision's ViT, ``nn.TransformerEncoder``, many
  hand-written models): a forward hook runs the module's own forward again on the same
  arguments with ``need_weights=True, average_attn_weights=False`` and reads PyTorch's per-head
  weights (packed or separate projections, biases, masks, ``batch_first`` as the call had
  them); the output of the real call is untouched.
* ``keep_attn``: vitbench's own attention (a class named ``...Attention`` with a ``keep_attn``
  flag): the flag is set while extracting, and the softmax the module then keeps in
  ``last_attn`` is read and cleared after its forward.
* ``talking_heads``: a module with a linear ``proj_w`` (CaiT's talking-heads attention), which
  mixes the heads' softmaxes before they weight the values; the mixed rows need not be
  non-negative or sum to one, so the input of ``proj_w``, each head's own softmax, is read.
* ``unfused``: any other class whose name holds ``Attention`` or ``Attn`` with an ``nn.Dropout``
  ``attn_drop`` (BEiT, CaiT's class attention, CrossViT's cross attention, PVT-v2, Swin,
  Twins, MaxViT's ``AttentionCl``): fused attention is switched off while extracting (where
  the module has a ``fused_attn`` flag) and ``attn_drop``'s input is read. The module then runs
  its own explicit path, which equals the fused kernel to float rounding (about 1e-6).

Two more read calls rather than modules (see :mod:`vitbench.attention.intercept`), and are found
by a probe, one forward of an example input, outside the modules above:

* ``sdpa``: a call of ``torch.nn.functional.scaled_dot_product_attention``; the weights are
  recomputed from the call's own q, k, mask, causality and scale.
* ``softmax``: a softmax over the last dimension inside a module whose class names itself
  attention and declares its heads (LeViT, EfficientFormer, torchvision's Swin and MaxViT).

A layer is a module, or, for the call readers, one call: a module that makes several such calls
in one forward of the model (or runs several times in it) gives layers ``name#0``, ``name#1``...
A module inside one already read is not read again. Leaving the extractor removes the hooks and
restores every flag it set.

Weights reach a callback one layer at a time, as (batch rows, heads, queries, keys) float32, so
a caller reduces them as they come and never holds every map. Windowed attention gives one
batch row per window, batch-major (all windows of the first image, then the second's...).
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vitbench.attention.intercept import (
    CallWatch,
    as_rows,
    discover_calls,
    names_attention,
    sdpa_weights,
)
from vitbench.errors import VitbenchError


@dataclass
class AttentionLayer:
    """One attention layer of a model, in module order (calls of one module in call order)."""

    index: int
    name: str
    module: nn.Module
    num_heads: int
    reader: str  # recompute | mha | keep_attn | talking_heads | unfused | sdpa | softmax


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
    if isinstance(module, nn.MultiheadAttention):
        return "mha"
    if hasattr(module, "keep_attn") and type(module).__name__.endswith("Attention"):
        return "keep_attn"
    if isinstance(getattr(module, "proj_w", None), nn.Linear):
        return "talking_heads"
    if names_attention(module) and isinstance(getattr(module, "attn_drop", None), nn.Dropout):
        return "unfused"
    return None


#: (name, module, heads, reader) of one layer before it is numbered
_Found = tuple[str, nn.Module, int, str]


def _module_layers(model: nn.Module, who: str) -> list[_Found]:
    """The layers the module readers find, outermost first: none inside another."""
    found: list[_Found] = []
    for name, module in model.named_modules():
        if any(name.startswith(f[0] + ".") for f in found):
            continue
        reader = _reader_for(module)
        if reader is None:
            continue
        heads = getattr(module, "num_heads", None)
        if heads is None:
            raise VitbenchError(
                f"cannot read attention of {who}: {name} ({type(module).__name__}) has no num_heads"
            )
        found.append((name, module, int(heads), reader))
    return found


def _call_layers(model: nn.Module, example: Any, taken: list[_Found], who: str) -> list[_Found]:
    """The layers the call readers find in a probe forward of ``example``, outside ``taken``."""
    calls = discover_calls(model, example, {id(f[1]) for f in taken}, who)
    names = {id(m): name for name, m in model.named_modules()}
    per_module = Counter(id(m) for m, _, _ in calls)
    seen: Counter[int] = Counter()
    found: list[_Found] = []
    for module, kind, heads in calls:
        name = names[id(module)]
        if per_module[id(module)] > 1:
            name = f"{name}#{seen[id(module)]}"
        seen[id(module)] += 1
        found.append((name, module, heads, kind))
    return found


def find_attention_layers(
    model: nn.Module, model_name: str | None = None, example: Any = None
) -> list[AttentionLayer]:
    """Every attention layer the readers understand, in module order; an error when none.

    Without ``example`` only the module readers look; with it, one forward of ``example`` (a
    batch of one is enough) also finds the ``sdpa`` and ``softmax`` call layers.
    """
    who = model_name or type(model).__name__
    found = _module_layers(model, who)
    if example is not None:
        found += _call_layers(model, example, found, who)
    order = {id(m): i for i, m in enumerate(model.modules())}
    found.sort(key=lambda f: order[id(f[1])])  # stable: a module's calls keep their order
    if not found:
        kinds = sorted({type(m).__name__ for m in model.modules() if names_attention(m)})
        seen = f" (attention-like modules found: {', '.join(kinds)})" if kinds else ""
        calls = "" if example is None else " and no scaled_dot_product_attention call"
        raise VitbenchError(
            f"cannot read attention weights from {who}: "
            f"no attention module of a kind vitbench reads{calls}{seen}"
        )
    return [AttentionLayer(i, *f) for i, f in enumerate(found)]


def mha_weights(module: nn.MultiheadAttention, args: tuple, kwargs: dict) -> torch.Tensor:
    """Per-head weights of one ``nn.MultiheadAttention`` call: (N, heads, L, S).

    The module's forward again, on the call's own arguments, with ``need_weights=True`` and
    ``average_attn_weights=False``; an unbatched call gives N = 1.
    """
    bound = inspect.signature(module.forward).bind(*args, **kwargs)
    bound.arguments.update(need_weights=True, average_attn_weights=False)
    _out, weights = module.forward(*bound.args, **bound.kwargs)  # (N, H, L, S) or (H, L, S)
    return weights if weights.ndim == 4 else weights.unsqueeze(0)


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

    ``example``: an input for the probe that finds the call layers (see
    :func:`find_attention_layers`); without it only the module readers are used. Use
    :meth:`run` for a forward that also checks that every layer was read.
    """

    model: nn.Module
    on_attention: OnAttention
    model_name: str | None = None
    example: Any = None
    layers: list[AttentionLayer] = field(init=False)
    _handles: list[Any] = field(init=False, default_factory=list)
    _restore: list[tuple[nn.Module, str, Any]] = field(init=False, default_factory=list)
    _seen: set[int] = field(init=False, default_factory=set)
    _watch: CallWatch | None = field(init=False, default=None)
    _by_module: dict[int, list[AttentionLayer]] = field(init=False, default_factory=dict)
    _calls: Counter[int] = field(init=False, default_factory=Counter)

    def __post_init__(self) -> None:
        self.layers = find_attention_layers(self.model, self.model_name, self.example)
        self.example = None  # found: the probe's input is not kept alive

    @property
    def _who(self) -> str:
        return self.model_name or type(self.model).__name__

    def _emit(self, layer: AttentionLayer, weights: torch.Tensor) -> None:
        where = f"{layer.name} of {self._who}"
        rows = as_rows(weights.detach(), layer.num_heads, where)  # (rows, H, Nq, Nk)
        self._seen.add(layer.index)
        self.on_attention(layer, rows.float())

    def _set(self, module: nn.Module, attr: str, value: Any) -> None:
        self._restore.append((module, attr, getattr(module, attr)))
        setattr(module, attr, value)

    def __enter__(self) -> AttentionExtractor:
        try:
            for layer in self.layers:
                if layer.reader in ("sdpa", "softmax"):
                    self._by_module.setdefault(id(layer.module), []).append(layer)
                else:
                    self._install(layer)
            if self._by_module:
                self._watch_calls()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _install(self, layer: AttentionLayer) -> None:
        """Hooks (and flags) that hand one module reader's weights to :meth:`_emit`."""
        mod = layer.module
        if layer.reader in ("recompute", "mha"):

            def hook(module, args, kwargs, _out, layer=layer):
                with torch.no_grad():
                    if layer.reader == "mha":
                        w = mha_weights(module, args, kwargs)
                    else:
                        x = args[0] if args else kwargs["x"]
                        mask, causal = kwargs.get("attn_mask"), kwargs.get("is_causal", False)
                        w = recompute_timm_attention(module, x, mask, causal)
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

    def _watch_calls(self) -> None:
        """Read the call layers: calls are numbered per module from each forward of the model."""
        self._handles.append(self.model.register_forward_pre_hook(lambda *_: self._calls.clear()))
        module_layers = {id(layer.module) for layer in self.layers} - set(self._by_module)
        self._watch = CallWatch(
            self.model, self._on_call, module_layers, set(self._by_module), self._who
        )
        self._watch.__enter__()

    def _on_call(
        self, owner: nn.Module, kind: str, _heads: int, args: tuple, kwargs: dict, out: Any
    ) -> None:
        k = self._calls[id(owner)]
        self._calls[id(owner)] += 1
        mine = self._by_module.get(id(owner), [])
        if k >= len(mine) or mine[k].reader != kind:
            raise VitbenchError(
                f"cannot read attention weights of {self._watch.names[id(owner)]}: it made an "
                f"attention call ({kind}, number {k + 1} in this forward) the probe did not see"
            )
        with torch.no_grad():
            weights = out if kind == "softmax" else sdpa_weights(*args, **kwargs)
        self._emit(mine[k], weights)

    def __exit__(self, *exc: object) -> None:
        if self._watch is not None:
            self._watch.__exit__(None, None, None)
            self._watch = None
        self._by_module.clear()
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
            raise VitbenchError(
                f"cannot read attention weights from {self._who}: "
                f"layers {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''} ran without "
                "exposing them"
            )
        return out


def extract_attention(
    model: nn.Module, x: torch.Tensor, model_name: str | None = None
) -> tuple[Any, list[torch.Tensor]]:
    """One forward: the model's output and every layer's (rows, heads, Nq, Nk) weights.

    ``x`` is also the probe's input that finds the layers. Returned in layer order; holds
    all maps at once, so it is for a few images: analyses reduce through the callback instead.
    """
    maps: dict[int, torch.Tensor] = {}
    with (
        torch.no_grad(),
        AttentionExtractor(
            model, lambda layer, w: maps.update({layer.index: w}), model_name, x
        ) as ex,
    ):
        out = ex.run(x)
    return out, [maps[i] for i in sorted(maps)]
