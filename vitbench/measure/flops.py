"""Counting multiply-accumulates (MACs) by intercepting ATen operators.

Convention (the one fvcore and timm's ``infer_gmacs`` column use): one multiply-add counts
once. Matrix products, convolutions and attention are counted from their shapes; layer, group,
batch and instance norms count 5 operations per element with an affine transform and 4 without
(fvcore's rule); element-wise operations, softmax, activations, reductions and data movement
count zero. The counter is a ``TorchDispatchMode``, so it sees what actually runs: fused
attention kernels (``aten._scaled_dot_product_*``, which plain fvcore skips and torch's
``FlopCounterMode`` misses on CPU) are counted as ``batch x heads x Nq x Nk x (Dqk + Dv)``,
the same as the two explicit matrix products they replace. It works on the meta device, so a
model's cost is known without its weights in memory.

Every operator the counter sees is either handled (a row of ``HANDLES``), zero by convention
(``ZERO_COST``), or reported in ``uncounted``: nothing is dropped silently.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

aten = torch.ops.aten

#: (inputs, outputs) -> (MACs, activations: elements written by the counted op)
Handle = Callable[[Sequence[Any], Sequence[Any]], tuple[int, int]]


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(x.shape)


def _numel(x: Any) -> int:
    return math.prod(_shape(x))


def _mm(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    # (m, k) @ (k, n): m * k * n
    a, b = inputs[0], inputs[1]
    m, k = _shape(a)
    n = _shape(b)[-1]
    return m * k * n, _numel(outputs[0])


def _addmm(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    # bias + (m, k) @ (k, n): the bias addition is free, as in fvcore
    return _mm(inputs[1:], outputs)


def _bmm(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    # (b, m, k) @ (b, k, n)
    b, m, k = _shape(inputs[0])
    n = _shape(inputs[1])[-1]
    return b * m * k * n, _numel(outputs[0])


def _baddbmm(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    return _bmm(inputs[1:], outputs)


def _convolution(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    # aten.convolution(input, weight, bias, stride, padding, dilation, transposed, out_pad, groups)
    x, w = inputs[0], inputs[1]
    transposed = bool(inputs[6]) if len(inputs) > 6 else False
    out = outputs[0]
    w_shape = _shape(w)  # (c_out, c_in / groups, *kernel) or transposed (c_in, c_out / groups, ...)
    if transposed:
        # every input element meets every weight of its group once
        batch, spatial = _shape(x)[0], math.prod(_shape(x)[2:])
        return batch * math.prod(w_shape) * spatial, _numel(out)
    batch, spatial = _shape(out)[0], math.prod(_shape(out)[2:])
    return batch * math.prod(w_shape) * spatial, _numel(out)


def _norm(affine_index: int) -> Handle:
    """fvcore's rule: 5 ops per element with an affine transform, 4 without."""

    def handle(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
        affine = len(inputs) > affine_index and inputs[affine_index] is not None
        return _numel(inputs[0]) * (5 if affine else 4), 0

    return handle


def _batch_norm_eval(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    # fvcore: inference batch norm is a per-channel affine map, 1 op per element (2 with affine)
    affine = inputs[1] is not None
    return _numel(inputs[0]) * (2 if affine else 1), 0


def _native_batch_norm(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    training = bool(inputs[5])
    if training:
        return _norm(1)(inputs, outputs)
    return _batch_norm_eval(inputs, outputs)


def _sdpa(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    # q (..., Nq, Dqk), k (..., Nk, Dqk), v (..., Nk, Dv):
    # scores Nq x Nk x Dqk MACs plus weighted values Nq x Nk x Dv MACs per batch and head
    q, k, v = inputs[0], inputs[1], inputs[2]
    *lead, nq, dqk = _shape(q)
    nk, dv = _shape(k)[-2], _shape(v)[-1]
    bh = math.prod(lead)
    # activations as the unfused pair of matmuls writes them: the score matrix and the output
    return bh * nq * nk * (dqk + dv), bh * nq * nk + bh * nq * dv


def _upsample(ops_per_output: int) -> Handle:
    def handle(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
        return _numel(outputs[0]) * ops_per_output, 0

    return handle


def _adaptive_avg_pool(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    return _numel(inputs[0]), 0  # fvcore: one op per input element


def _packets(*names: str) -> list[Any]:
    out = []
    for name in names:
        packet = getattr(aten, name, None)
        if packet is not None:
            out.append(packet)
    return out


#: operator overload packet -> handle. Extending coverage is adding a row here.
HANDLES: dict[Any, Handle] = {
    aten.mm: _mm,
    aten.addmm: _addmm,
    aten.bmm: _bmm,
    aten.baddbmm: _baddbmm,
    aten.convolution: _convolution,
    aten._convolution: _convolution,
    aten.native_layer_norm: _norm(2),
    aten.native_group_norm: _norm(1),
    aten.native_batch_norm: _native_batch_norm,
    aten._native_batch_norm_legit_no_training: _batch_norm_eval,
    aten.upsample_nearest2d: _upsample(1),
    aten.upsample_bilinear2d: _upsample(4),
    aten._adaptive_avg_pool2d: _adaptive_avg_pool,
    **{
        p: _sdpa
        for p in _packets(
            "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_flash_attention_for_cpu",
            "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_cudnn_attention",
            "_scaled_dot_product_fused_attention_overrideable",
            "_flash_attention_forward",
            "_efficient_attention_forward",
        )
    },
}

#: Operators that cost zero MACs by convention: element-wise arithmetic and activations,
#: softmax, reductions, comparisons, indexing, creation and data movement.
ZERO_COST: frozenset[str] = frozenset(
    """
    _local_scalar_dense _log_softmax _reshape_alias _safe_softmax _softmax _to_copy
    _unsafe_view abs add add_ addcmul alias all amax amin any arange argmax argmin
    as_strided avg_pool2d bernoulli_ bitwise_and bitwise_not bitwise_or cat ceil clamp
    clamp_min clone constant_pad_nd contiguous copy copy_ cos cumsum detach div div_ dropout
    embedding empty empty_like empty_strided eq erf exp expand expand_as fill fill_ flip
    floor full full_like gather ge gelu gelu_ gt hardtanh index index_put index_put_
    index_select isinf isnan le lift_fresh linspace log log_softmax logical_and logical_not
    logical_or lt masked_fill masked_fill_ max max_pool2d_with_indices maximum mean min
    minimum mul mul_ narrow native_dropout ne neg new_empty new_empty_strided new_full
    new_ones new_zeros normal_ ones ones_like permute pow reciprocal relu relu_ remainder
    repeat roll round rsqrt rsub scalar_tensor scatter select sigmoid sign silu silu_ sin
    slice softmax sort split split_with_sizes sqrt squeeze stack std sub sub_ sum t tanh to
    topk transpose tril triu trunc unbind unfold uniform_ unsqueeze var var_mean view where
    zero_ zeros zeros_like
    """.split()
)


def _op_name(func: Any) -> str:
    return func.overloadpacket.__name__


class MacCounter(TorchDispatchMode):
    """Dispatch mode that adds up MACs and activations per operator and per module.

    Module attribution uses forward pre/post hooks installed by :func:`count_macs`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.macs = 0
        self.activations = 0
        self.by_op: Counter[str] = Counter()
        self.uncounted: Counter[str] = Counter()
        self.by_module: defaultdict[str, int] = defaultdict(int)
        self.module_stack: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        handle = HANDLES.get(func.overloadpacket)
        if handle is not None:
            outputs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
            macs, acts = handle(list(args), outputs)
            self.macs += macs
            self.activations += acts
            self.by_op[_op_name(func)] += macs
            for name in dict.fromkeys(self.module_stack):  # each enclosing module once
                self.by_module[name] += macs
        elif _op_name(func) not in ZERO_COST:
            self.uncounted[_op_name(func)] += 1
        return out


@dataclass
class MacCount:
    """The result of one counted forward pass."""

    macs: int  # multiply-accumulates for the whole batch
    activations: int  # elements written by counted ops (fvcore's activation count)
    by_op: dict[str, int] = field(default_factory=dict)
    by_module: dict[str, int] = field(
        default_factory=dict
    )  # hierarchical: parents include children
    uncounted: dict[str, int] = field(default_factory=dict)  # op name -> calls not counted

    def module_breakdown(self, depth: int = 1) -> dict[str, int]:
        """MACs of the modules ``depth`` levels below the root (``blocks.3`` is depth 2)."""
        return {
            name: macs
            for name, macs in self.by_module.items()
            if name and name.count(".") == depth - 1
        }


def count_macs(model: nn.Module, inputs: Sequence[torch.Tensor]) -> MacCount:
    """Run ``model(*inputs)`` once under the counter, without gradients."""
    counter = MacCounter()
    handles = []
    for name, module in model.named_modules():
        if not name:
            continue

        def pre(_mod, _args, name=name):
            counter.module_stack.append(name)

        def post(_mod, _args, _out, name=name):
            # pop this module even if a child's post hook did not run
            while counter.module_stack and counter.module_stack.pop() != name:
                pass

        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    try:
        with torch.no_grad(), counter:
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return MacCount(
        macs=counter.macs,
        activations=counter.activations,
        by_op=dict(counter.by_op),
        by_module=dict(counter.by_module),
        uncounted=dict(counter.uncounted),
    )
