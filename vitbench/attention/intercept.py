"""Attention that code computes by calling a function, read by intercepting the call.

Two calls are read: ``torch.nn.functional.scaled_dot_product_attention`` in any module, and a
softmax over the last dimension inside a module whose class names itself attention (``Attention``,
``Attn``) and says how many heads it has (``num_heads``, ``n_heads``, ``heads`` or Hugging Face's
``num_attention_heads``): LeViT, EfficientFormer, torchvision's Swin and MaxViT, hand-written
ViTs, the eager attention of Hugging Face's BERT and ViT family. The real call runs as it would
and its output is returned untouched; for a softmax the weights are that output, for
``scaled_dot_product_attention`` they are recomputed from the call's own arguments by
:func:`sdpa_weights`.

The calls are seen through a :class:`torch.overrides.TorchFunctionMode` rather than by patching
``torch.nn.functional``: a mode sees every path to the function (``F.scaled_dot_product_attention``,
a name bound by ``from torch.nn.functional import ...`` before vitbench was imported,
``Tensor.softmax``, ``torch.softmax``, ``nn.Softmax``), changes no module's globals, and is local
to the thread. While a mode is active ``torch.overrides.has_torch_function`` is true, which turns
off ``nn.MultiheadAttention``'s fast path (another kernel, equal to float rounding), so when
reading the mode is entered only while a module with intercepted layers runs, never around the
whole model.

Each call belongs to the innermost module running when it happens (a stack kept by forward
pre/post hooks on every module; an ``nn.Softmax`` counts as its parent). Calls inside a module
that another reader already reads are not attention of their own: an ``nn.MultiheadAttention``
or timm's fused ``Attention`` that calls ``scaled_dot_product_attention`` is not read twice.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from vitbench.errors import VitbenchError

_KINDS: dict[Any, str] = {
    F.scaled_dot_product_attention: "sdpa",
    torch.softmax: "softmax",
    torch.Tensor.softmax: "softmax",
    F.softmax: "softmax",
    torch.special.softmax: "softmax",
}

#: (owner module, kind, heads, the call's args, kwargs, output) -> None
OnCall = Callable[[nn.Module, str, int, tuple, dict, Any], None]


def heads_attribute(module: nn.Module) -> int | None:
    """The number of heads a module declares, under the names common code uses."""
    for attr in ("num_heads", "n_heads", "heads", "num_attention_heads"):
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def names_attention(module: nn.Module) -> bool:
    """Whether the module's class calls itself attention (``...Attention...``, ``...Attn...``)."""
    name = type(module).__name__.lower()
    return "attention" in name or "attn" in name


def as_rows(weights: torch.Tensor, heads: int, where: str) -> torch.Tensor:
    """(..., heads, Nq, Nk) -> (rows, heads, Nq, Nk): the leading dimensions (batch, windows)
    flattened batch-major, so each window is a batch row; an error for any other layout."""
    if weights.ndim < 4 or weights.shape[-3] != heads:
        raise VitbenchError(
            f"cannot read attention weights of {where}: shape {tuple(weights.shape)} is not "
            f"(batch, ..., {heads} heads, queries, keys)"
        )
    return weights.reshape(-1, *weights.shape[-3:])


def sdpa_weights(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor | None = None,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> torch.Tensor:
    """The weights ``scaled_dot_product_attention`` applies to the values, before dropout.

    Takes the call's own arguments (``value`` and ``dropout_p`` only so that they bind alike).
    query (..., Hq, L, E), key (..., Hk, S, E) -> (..., Hq, L, S) float32:
    softmax(q k^T * scale + mask), scale 1/sqrt(E) when None; a bool mask keeps the pairs where
    it is True; is_causal keeps the lower triangle, top-left aligned; with enable_gqa each key
    head serves Hq / Hk query heads.
    """
    q, k = query.float(), key.float()
    if enable_gqa:
        k = k.repeat_interleave(q.shape[-3] // k.shape[-3], dim=-3)
    scores = q @ k.transpose(-2, -1) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if is_causal:
        n_q, n_k = scores.shape[-2:]
        attn_mask = torch.ones(n_q, n_k, dtype=torch.bool, device=scores.device).tril()
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    elif attn_mask is not None:
        scores = scores + attn_mask
    return scores.softmax(dim=-1)


def call_heads(
    kind: str, owner: nn.Module, where: str, args: tuple, kwargs: dict, out: Any
) -> int | None:
    """The heads of an intercepted call when it is attention vitbench reads, None when it is not
    attention; an error when it is attention in a layout that does not say which are the heads.

    ``scaled_dot_product_attention`` with a 4-D query has its heads at dimension -3; with more
    dimensions only when the owner declares that many heads. A softmax is attention when its
    owner names itself attention and declares heads, and the softmax is over the last dimension
    of a 4-D or larger tensor.
    """
    declared = heads_attribute(owner)
    if kind == "sdpa":
        shape = (args[0] if args else kwargs["query"]).shape
        if len(shape) == 4:
            return shape[-3]
        what = f"scaled_dot_product_attention with a query of shape {tuple(shape)}"
    else:
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        if declared is None or not names_attention(owner) or out.ndim < 4:
            return None
        if dim is None or dim % out.ndim != out.ndim - 1:
            return None
        shape = out.shape
        what = f"softmax weights of shape {tuple(shape)}"
    if declared is not None and shape[-3] == declared:
        return declared
    plural = "" if declared == 1 else "s"
    heads = f"its {declared} head{plural} at" if declared is not None else "declared heads at"
    raise VitbenchError(
        f"cannot read attention weights of {where} ({type(owner).__name__}): {what} does not "
        f"have {heads} dimension -3, where vitbench reads (batch, ..., heads, queries, keys)"
    )


class _Mode(TorchFunctionMode):
    """Runs every torch function as it is; hands the attention calls to ``on_call``."""

    def __init__(self, on_call: Callable[[str, tuple, dict, Any], None]) -> None:
        super().__init__()
        self.on_call = on_call

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        kind = _KINDS.get(func)
        if kind is not None:
            self.on_call(kind, args, kwargs, out)
        return out


class CallWatch:
    """While entered, ``model``'s attention calls go to ``on_call``, with the module they belong to.

    ``skip``: ids of modules whose calls, and their children's, are ignored (read otherwise).
    ``only``: ids of the modules while which the mode is on (None: the whole forward).
    ``who``: the model's name in messages.
    """

    def __init__(
        self,
        model: nn.Module,
        on_call: OnCall,
        skip: Collection[int] = (),
        only: Collection[int] | None = None,
        who: str = "the model",
    ) -> None:
        self.model, self.on_call, self.skip, self.only = model, on_call, set(skip), only
        self.names = {
            id(m): f"{name or 'the root module'} of {who}" for name, m in model.named_modules()
        }
        self.running: list[nn.Module] = []  # innermost last
        self._mode = _Mode(self._call)
        self._handles: list[Any] = []
        self._active = 0  # modules of ``only`` running

    def __enter__(self) -> CallWatch:
        for module in self.model.modules():
            self._handles.append(module.register_forward_pre_hook(self._push))
            self._handles.append(module.register_forward_hook(self._pop, always_call=True))
        if self.only is None:
            self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.only is None:
            self._mode.__exit__(None, None, None)
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.running.clear()

    def _push(self, module: nn.Module, _args: tuple) -> None:
        self.running.append(module)
        if self.only is not None and id(module) in self.only:
            if self._active == 0:
                self._mode.__enter__()
            self._active += 1

    def _pop(self, module: nn.Module, _args: tuple, _out: Any) -> None:
        self.running.pop()
        if self.only is not None and id(module) in self.only:
            self._active -= 1
            if self._active == 0:
                self._mode.__exit__(None, None, None)

    def _call(self, kind: str, args: tuple, kwargs: dict, out: Any) -> None:
        if any(id(m) in self.skip for m in self.running):
            return
        owner = next((m for m in reversed(self.running) if not isinstance(m, nn.Softmax)), None)
        if owner is None:
            return
        heads = call_heads(kind, owner, self.names[id(owner)], args, kwargs, out)
        if heads is not None:
            self.on_call(owner, kind, heads, args, kwargs, out)


def discover_calls(
    model: nn.Module, example: Any, skip: Collection[int], who: str = "the model"
) -> list[tuple[nn.Module, str, int]]:
    """The probe: one forward of ``example``; each attention call outside ``skip`` as
    (owner module, kind, heads), in call order. The output is thrown away."""
    found: list[tuple[nn.Module, str, int]] = []

    def on_call(owner: nn.Module, kind: str, heads: int, *_: Any) -> None:
        found.append((owner, kind, heads))

    with torch.no_grad(), CallWatch(model, on_call, skip, who=who):
        model(example)
    return found
