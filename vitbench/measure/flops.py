"""Counting multiply-accumulates (MACs) by intercepting ATen operators, forward and backward.

Convention (the one fvcore and timm's ``infer_gmacs`` column use): one multiply-add counts
once. Matrix products, convolutions and attention are counted from their shapes; layer, group,
batch and instance norms count 5 operations per element with an affine transform and 4 without
(fvcore's rule); adaptive average pooling 1 per input element (fvcore's rule; counted where
``adaptive_avg_pool2d`` is called, since torch runs a global pool as a ``mean``); element-wise
operations, softmax, activations, reductions and data movement count zero. The counter is a
``TorchDispatchMode``, so it sees what actually runs: fused attention kernels
(``aten._scaled_dot_product_*``, which plain fvcore skips) are counted as
``batch x heads x Nq x Nk x (Dqk + Dv)``, the same as the two explicit matrix products they
replace. It works on the meta device, so a model's cost is known without its weights in memory.

A training step's backward (:func:`count_train_macs`) is counted by the same convention: the
input- and weight-gradient products of linear layers arrive as ``mm``; a convolution's
backward counts the forward's MACs once per gradient it computes; a norm's input gradient what
its forward counts and its weight gradient 1 per element; a fused attention backward twice its
forward (the gradients of both products); what is free forward is free backward.

Every operator the counter sees is either handled (a row of ``HANDLES``), zero by convention
(``ZERO_COST``), or reported in ``uncounted``: nothing is dropped silently.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode
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


def _conv_macs(x: Any, w: Any, out: Any, transposed: bool) -> int:
    """Every multiply of a convolution: batch x spatial positions x weights per position."""
    # weight (c_out, c_in / groups, *kernel), or transposed (c_in, c_out / groups, *kernel);
    # transposed, every input element meets every weight of its group once
    spatial = math.prod(_shape(x if transposed else out)[2:])
    return _shape(x)[0] * spatial * _numel(w)


def _convolution(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    # aten.convolution(input, weight, bias, stride, padding, dilation, transposed, out_pad, groups)
    transposed = bool(inputs[6]) if len(inputs) > 6 else False
    return _conv_macs(inputs[0], inputs[1], outputs[0], transposed), _numel(outputs[0])


def _convolution_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    # convolution_backward(grad_out, input, weight, bias_sizes, stride, padding, dilation,
    #                      transposed, output_padding, groups, output_mask[3])
    grad_out, x, w = inputs[0], inputs[1], inputs[2]
    grad_input, grad_weight, _grad_bias = inputs[10]  # the bias gradient is a sum: free
    # the input and the weight gradient each repeat every multiply of the forward once
    per_gradient = _conv_macs(x, w, grad_out, bool(inputs[7]))
    return per_gradient * (int(grad_input) + int(grad_weight)), sum(map(_numel, outputs))


def _norm_ops(affine: bool, training: bool = True) -> int:
    """fvcore's operations per element: 5 with an affine transform, 4 without; inference batch
    norm, a per-channel affine map, 2 and 1."""
    if training:
        return 5 if affine else 4
    return 2 if affine else 1


def _norm(affine_index: int) -> Handle:
    def handle(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
        affine = len(inputs) > affine_index and inputs[affine_index] is not None
        return _numel(inputs[0]) * _norm_ops(affine), 0

    return handle


def _batch_norm_eval(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    return _numel(inputs[0]) * _norm_ops(inputs[1] is not None, training=False), 0


def _native_batch_norm(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    affine, training = inputs[1] is not None, bool(inputs[5])
    return _numel(inputs[0]) * _norm_ops(affine, training), 0


def _norm_backward(weight: int, mask: int, train: int | None = None) -> Handle:
    """A norm's backward: the input gradient counts what the forward counts, the weight
    gradient 1 per element (output gradient x normalised input, summed), the bias gradient
    nothing (a sum). ``weight``, ``mask``, ``train``: argument positions in the schema."""

    def handle(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
        affine = inputs[weight] is not None
        training = train is None or bool(inputs[train])
        grad_input, grad_weight, _grad_bias = inputs[mask]
        per_element = _norm_ops(affine, training) * int(grad_input) + int(grad_weight)
        return _numel(inputs[1]) * per_element, 0  # inputs[1]: the forward's input

    return handle


def _attention(q: Any, k: Any, v: Any, heads_first: bool) -> tuple[int, int]:
    """MACs and elements written of softmax(q k^T) v, as the two matmuls it replaces."""
    # q (..., Nq, Dqk), k (..., Nk, Dqk), v (..., Nk, Dv), heads in the leading dimensions;
    # the flash and efficient kernels' own layout is (B, N, H, D): heads after the sequence
    shapes = [_shape(t) for t in (q, k, v)]
    if not heads_first:
        shapes = [s[:-3] + (s[-2], s[-3], s[-1]) for s in shapes]
    (*lead, nq, dqk), (nk, dv) = shapes[0], (shapes[1][-2], shapes[2][-1])
    bh = math.prod(lead)
    # scores Nq x Nk x Dqk MACs plus weighted values Nq x Nk x Dv MACs per batch and head;
    # activations as the unfused pair of matmuls writes them: the score matrix and the output
    return bh * nq * nk * (dqk + dv), bh * nq * nk + bh * nq * dv


def _sdpa(heads_first: bool = True) -> Handle:
    def handle(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
        return _attention(inputs[0], inputs[1], inputs[2], heads_first)

    return handle


def _sdpa_backward(heads_first: bool = True) -> Handle:
    """The gradients of both matmuls, twice the forward: dQ = dS K and dK = dS^T Q (Nq x Nk x Dqk
    each), dP = dO V^T and dV = P^T dO (Nq x Nk x Dv each). The kernel's recompute of the scores
    is not counted: attention counts its math, as the unfused matmuls' backward has it."""

    def handle(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
        macs, _ = _attention(inputs[1], inputs[2], inputs[3], heads_first)  # after grad_out
        return 2 * macs, sum(map(_numel, outputs[:3]))  # dQ, dK, dV

    return handle


def _upsample(ops_per_output: int) -> Handle:
    def handle(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
        return _numel(outputs[0]) * ops_per_output, 0

    return handle


def _upsample_backward(ops_per_output: int) -> Handle:
    def handle(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
        return _numel(inputs[0]) * ops_per_output, 0  # grad_output: the forward output's shape

    return handle


def _adaptive_avg_pool_backward(inputs: Sequence[Any], outputs: Sequence[Any]) -> tuple[int, int]:
    return _numel(inputs[1]), 0  # (grad_output, self): one op per element of the forward input


def _packets(*names: str) -> list[Any]:
    return [getattr(aten, name) for name in names if hasattr(aten, name)]


#: fused attention kernels: (B, H, N, D) layout
_SDPA = (
    "flash_attention",
    "flash_attention_for_cpu",
    "efficient_attention",
    "cudnn_attention",
    "fused_attention_overrideable",
)
#: the flash and efficient kernels under them: (B, N, H, D) layout
_ATTENTION_KERNELS = ("_flash_attention", "_efficient_attention")

#: operator overload packet -> handle. Extending coverage is adding a row here. Backward
#: operators count what their forward's convention counts (see docs/methodology/flops.md).
HANDLES: dict[Any, Handle] = {
    aten.mm: _mm,  # also a linear layer's input and weight gradients
    aten.addmm: _addmm,
    aten.bmm: _bmm,
    aten.baddbmm: _baddbmm,
    aten.convolution: _convolution,
    aten._convolution: _convolution,
    aten.convolution_backward: _convolution_backward,
    aten.native_layer_norm: _norm(2),
    aten.native_group_norm: _norm(1),
    aten.native_batch_norm: _native_batch_norm,
    aten._native_batch_norm_legit_no_training: _batch_norm_eval,
    aten.native_layer_norm_backward: _norm_backward(weight=5, mask=7),
    aten.native_group_norm_backward: _norm_backward(weight=4, mask=9),
    aten.native_batch_norm_backward: _norm_backward(weight=2, mask=9, train=7),
    aten.upsample_nearest2d: _upsample(1),
    aten.upsample_bilinear2d: _upsample(4),
    aten.upsample_nearest2d_backward: _upsample_backward(1),
    aten.upsample_bilinear2d_backward: _upsample_backward(4),
    aten._adaptive_avg_pool2d_backward: _adaptive_avg_pool_backward,
    **{p: _sdpa() for p in _packets(*(f"_scaled_dot_product_{k}" for k in _SDPA))},
    **{
        p: _sdpa_backward() for p in _packets(*(f"_scaled_dot_product_{k}_backward" for k in _SDPA))
    },
    **{
        p: _sdpa(heads_first=False) for p in _packets(*(f"{k}_forward" for k in _ATTENTION_KERNELS))
    },
    **{
        p: _sdpa_backward(heads_first=False)
        for p in _packets(*(f"{k}_backward" for k in _ATTENTION_KERNELS))
    },
}

#: Operators that cost zero MACs by convention: element-wise arithmetic and activations,
#: softmax, reductions, comparisons, indexing, creation and data movement.
#: ``_adaptive_avg_pool2d`` is here because pooling is counted where it is called
#: (:class:`_PooledAtCall`).
ZERO_COST: frozenset[str] = frozenset(
    """
    _adaptive_avg_pool2d _local_scalar_dense _log_softmax _reshape_alias _safe_softmax
    _softmax _to_copy _unsafe_view abs add add_ addcmul alias all amax amin any arange
    argmax argmin as_strided as_strided_ avg_pool2d bernoulli_ bitwise_and bitwise_not
    bitwise_or cat ceil clamp clamp_min clone constant_pad_nd contiguous copy copy_ cos
    cumsum detach div div_ dropout embedding empty empty_like empty_strided eq erf exp
    expand expand_as fill fill_ flip floor full full_like gather ge gelu gelu_ gt
    hardsigmoid hardsigmoid_ hardswish hardswish_ hardtanh hardtanh_ index index_put
    index_put_ index_select isinf isnan le leaky_relu leaky_relu_ lift_fresh
    linalg_vector_norm linspace log log_softmax logical_and logical_not logical_or lt
    masked_fill masked_fill_ max max_pool2d_with_indices maximum mean min minimum mish mish_
    mul mul_ narrow native_dropout ne neg new_empty new_empty_strided new_full new_ones
    new_zeros normal_ ones ones_like permute pow rand rand_like randint randint_like randn
    randn_like randperm reciprocal relu relu_ remainder repeat roll round rsqrt rsub
    scalar_tensor scatter select sigmoid sigmoid_ sign silu silu_ sin slice softmax softplus
    sort split split_with_sizes sqrt squeeze stack std sub sub_ sum t tanh to topk transpose
    tril triu trunc unbind unfold uniform_ unsqueeze var var_mean view where zero_ zeros
    zeros_like
    """.split()
    # the backward operators of those and of the loss (cross-entropy), zero by the same rule
    + """
    _log_softmax_backward_data _softmax_backward_data avg_pool2d_backward
    embedding_dense_backward gelu_backward hardsigmoid_backward hardswish_backward
    hardtanh_backward index_add leaky_relu_backward max_pool2d_with_indices_backward
    mish_backward native_dropout_backward nll_loss2d_backward nll_loss2d_forward
    nll_loss_backward nll_loss_forward scatter_add select_backward sigmoid_backward
    silu_backward slice_backward softplus_backward tanh_backward threshold_backward
    unfold_backward
    """.split()
)


def _op_name(func: Any) -> str:
    return func.overloadpacket.__name__


class MacCounter(TorchDispatchMode):
    """Dispatch mode that adds up MACs and activations per operator and per module; entering it
    also enters :class:`_PooledAtCall`, which counts adaptive pooling where it is called.

    ``module_stack`` holds the names of the modules whose forward is running, kept by
    :func:`_track_modules`; MACs counted while it is not empty also go to ``in_modules``.
    """

    def __init__(self, module_stack: list[str] | None = None) -> None:
        super().__init__()
        self.macs = 0
        self.activations = 0
        self.in_modules = 0
        self.by_op: Counter[str] = Counter()
        self.uncounted: Counter[str] = Counter()
        self.by_module: defaultdict[str, int] = defaultdict(int)
        self.module_stack = [] if module_stack is None else module_stack

    def __enter__(self) -> MacCounter:
        self._calls = _PooledAtCall(self).__enter__()  # entered first, left last
        return super().__enter__()

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self._calls.__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        handle = HANDLES.get(func.overloadpacket)
        if handle is not None:
            outputs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
            self.add(_op_name(func), *handle(list(args), outputs))
        elif _op_name(func) not in ZERO_COST:
            self.uncounted[_op_name(func)] += 1
        return out

    def add(self, op: str, macs: int, activations: int) -> None:
        """Count one operator call, in the total and in every module running it."""
        self.macs += macs
        self.activations += activations
        self.by_op[op] += macs
        self.in_modules += macs if self.module_stack else 0
        for name in dict.fromkeys(self.module_stack):  # each enclosing module once
            self.by_module[name] += macs

    def result(self) -> MacCount:
        return MacCount(
            macs=self.macs,
            activations=self.activations,
            by_op=dict(self.by_op),
            by_module=dict(self.by_module),
            uncounted=dict(self.uncounted),
        )


#: adaptive average pooling as code calls it (``nn.AdaptiveAvgPool2d`` calls the first)
_ADAPTIVE_AVG_POOL_2D = (F.adaptive_avg_pool2d, torch._C._nn.adaptive_avg_pool2d)


class _PooledAtCall(TorchFunctionMode):
    """Counts ``adaptive_avg_pool2d`` where it is called, 1 per input element, as fvcore's
    handle for ``aten::adaptive_avg_pool2d`` does. Below the call torch runs a global pool (output
    1 x 1) as a ``mean``, a reduction the dispatcher cannot tell from others, and other sizes as
    ``_adaptive_avg_pool2d``; both count zero there."""

    def __init__(self, counter: MacCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _ADAPTIVE_AVG_POOL_2D:  # (B, C, H, W) or (C, H, W) in
            self.counter.add("adaptive_avg_pool2d", _numel(args[0]), 0)
        return func(*args, **(kwargs or {}))


@dataclass
class MacCount:
    """The result of one counted pass (a forward, or a training step's backward)."""

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


@dataclass
class TrainMacCount:
    """One training step counted: forward and loss, then backward; no optimizer step."""

    forward: MacCount  # the forward pass and the loss
    backward: MacCount  # input and weight gradients, and any forward recomputed in backward
    recompute: int  # MACs of module forwards run again during backward (checkpointing)

    @property
    def macs(self) -> int:
        """Forward plus backward, for the whole batch."""
        return self.forward.macs + self.backward.macs

    @property
    def uncounted(self) -> dict[str, int]:
        """Operators not counted in either pass: name -> calls."""
        return dict(Counter(self.forward.uncounted) + Counter(self.backward.uncounted))


@contextmanager
def _track_modules(model: nn.Module, stack: list[str]) -> Iterator[None]:
    """Keep ``stack`` the names of ``model``'s submodules whose forward is running."""

    def pre(_mod: nn.Module, _args: Any, name: str) -> None:
        stack.append(name)

    def post(_mod: nn.Module, _args: Any, _out: Any, name: str) -> None:
        # pop this module even if a child's post hook did not run
        while stack and stack.pop() != name:
            pass

    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(partial(pre, name=name)))
            # always_call: a forward that raises (checkpointing stops recomputing early by
            # raising) still leaves the stack
            handles.append(module.register_forward_hook(partial(post, name=name), always_call=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def count_macs(model: nn.Module, inputs: Sequence[torch.Tensor]) -> MacCount:
    """Run ``model(*inputs)`` once under the counter, without gradients."""
    counter = MacCounter()
    with _track_modules(model, counter.module_stack), torch.no_grad(), counter:
        model(*inputs)
    return counter.result()


def count_train_macs(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    loss_fn: Callable[[Any], torch.Tensor],
) -> TrainMacCount:
    """Count one training step: ``loss_fn(model(*inputs))``, then its backward.

    The optimizer step is not run (its element-wise update is not counted). The model runs in
    the mode it is in (call ``model.train()`` first for a training step's dropout and norms);
    its ``.grad`` fields are left as they were.
    """
    forward = MacCounter()
    backward = MacCounter(forward.module_stack)  # a module running in backward: a recompute
    with _track_modules(model, forward.module_stack), _grads_kept(model):
        with forward:
            loss = loss_fn(model(*inputs))
        with backward:
            if loss.requires_grad:  # else nothing is trained: no backward runs
                loss.backward()
    return TrainMacCount(forward.result(), backward.result(), recompute=backward.in_modules)


@contextmanager
def _grads_kept(model: nn.Module) -> Iterator[None]:
    """Backward inside writes fresh gradients; the parameters' ``.grad`` is restored after."""
    saved = [(p, p.grad) for p in model.parameters()]
    for p, _ in saved:
        p.grad = None
    try:
        yield
    finally:
        for p, grad in saved:
            p.grad = grad
