"""Peak memory of one call: live tensor bytes, the allocator's view on CUDA, the profiler's on CPU.

CUDA: the caching allocator's peak counters, reset before the call. CPU: torch keeps no
allocator statistics, ``tracemalloc`` does not see ATen allocations and the process RSS never
goes down, so the peak is computed from the profiler's memory events (every allocation and free,
in time order). See docs/methodology/memory.md.
"""

from __future__ import annotations

import gc
import os
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

if TYPE_CHECKING:
    from vitbench.measure.train_step import TrainStep

CUDA_METHOD = "cuda-allocator"
CPU_METHOD = "profiler-memory-events"
#: weights, gradients and optimizer state: the bytes of the tensors themselves
PARTS_METHOD = "tensor sizes"
#: activations saved for backward: storages handed to autograd's pack hook
SAVED_METHOD = "saved-tensor hooks"


@dataclass
class MemoryStats:
    """Peak memory of one call, in bytes."""

    peak_bytes: int | None  # absolute peak of live tensor bytes during the call
    reserved_bytes: int | None  # CUDA caching allocator's reserved peak; None on CPU
    baseline_bytes: int | None  # live tensor bytes before the call (weights, inputs, ...)
    method: str  # CUDA_METHOD or CPU_METHOD

    @property
    def peak_over_baseline_bytes(self) -> int | None:
        """What the call itself adds at its peak (activations, workspace, outputs)."""
        if self.peak_bytes is None or self.baseline_bytes is None:
            return None
        return self.peak_bytes - self.baseline_bytes

    def as_record(self) -> dict[str, Any]:
        return {
            "memory_peak_bytes": self.peak_bytes,
            "memory_peak_over_baseline_bytes": self.peak_over_baseline_bytes,
            "memory_baseline_bytes": self.baseline_bytes,
            "memory_reserved_bytes": self.reserved_bytes,
            "memory_method": self.method,
        }


def peak_of_deltas(deltas: Iterable[int]) -> int:
    """Largest running sum of allocation deltas (bytes, time order), and never below zero."""
    live = peak = 0
    for d in deltas:
        live += d
        peak = max(peak, live)
    return peak


def live_tensor_bytes(device: torch.device | str = "cpu") -> int:
    """Bytes of the distinct storages of tensors on ``device`` that Python's gc can reach."""
    device = torch.device(device)
    storages: dict[int, int] = {}  # data_ptr -> nbytes, so views count once
    for obj in gc.get_objects():
        # type() rather than isinstance: isinstance reads __class__, which warns on some proxies
        if not issubclass(type(obj), torch.Tensor) or obj.device.type != device.type:
            continue
        try:
            storage = obj.untyped_storage()
            ptr = storage.data_ptr()
        except (RuntimeError, NotImplementedError):  # sparse, nested, torch.compile's fakes
            continue
        if ptr:
            storages[ptr] = storage.nbytes()
    return sum(storages.values())


def _cpu_peak(fn: Callable[[], object]) -> MemoryStats:
    # kineto prints start/stop lines to stderr on every profile; keep the CLI's stderr clean
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    baseline = live_tensor_bytes("cpu")
    with warnings.catch_warnings():
        # torch 2.11 warns that events are not kept across cycles: irrelevant to one-shot use
        warnings.filterwarnings("ignore", message=".*Profiler clears events", category=UserWarning)
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
    events = [
        e
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == DeviceType.CPU
    ]
    events.sort(key=lambda e: e.start_ns())
    peak_over = peak_of_deltas(e.nbytes() for e in events)
    return MemoryStats(
        peak_bytes=baseline + peak_over,
        reserved_bytes=None,
        baseline_bytes=baseline,
        method=CPU_METHOD,
    )


def _cuda_peak(fn: Callable[[], object], device: torch.device) -> MemoryStats:
    torch.cuda.synchronize(device)
    baseline = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return MemoryStats(
        peak_bytes=torch.cuda.max_memory_allocated(device),
        reserved_bytes=torch.cuda.max_memory_reserved(device),
        baseline_bytes=baseline,
        method=CUDA_METHOD,
    )


def measure_peak_memory(
    fn: Callable[[], object], *, device: torch.device | str = "cpu"
) -> MemoryStats:
    """Peak live tensor bytes while ``fn()`` runs once on ``device`` (cpu or cuda)."""
    device = torch.device(device)
    if device.type == "cuda":
        return _cuda_peak(fn, device)
    if device.type == "cpu":
        return _cpu_peak(fn)
    raise ValueError(f"peak memory is measured on cpu or cuda, not {device.type}")


@dataclass
class TrainMemoryStats:
    """Peak memory of one training step and the parts it is made of, in bytes."""

    peak: MemoryStats  # one full step: forward, loss, backward, optimizer step, zero_grad
    weights_bytes: int  # parameters
    grads_bytes: int  # parameter gradients after backward
    optimizer_bytes: int  # optimizer.state tensors after a step (moments, buffers, counters)
    saved_bytes: int  # distinct storages saved for backward, parameters and buffers excluded

    def as_record(self) -> dict[str, Any]:
        return {
            "train_memory_peak_bytes": self.peak.peak_bytes,
            "train_memory_baseline_bytes": self.peak.baseline_bytes,
            "train_memory_reserved_bytes": self.peak.reserved_bytes,
            "train_memory_weights_bytes": self.weights_bytes,
            "train_memory_grads_bytes": self.grads_bytes,
            "train_memory_optimizer_bytes": self.optimizer_bytes,
            "train_memory_saved_bytes": self.saved_bytes,
            "train_memory_method": self.peak.method,
            "train_memory_parts_method": PARTS_METHOD,
            "train_memory_saved_method": SAVED_METHOD,
        }


def _storage_key(t: torch.Tensor) -> tuple[torch.device, int]:
    return t.device, t.untyped_storage().data_ptr()


def storage_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and repeats count once)."""
    storages = {_storage_key(t): t.untyped_storage() for t in tensors}
    return sum(s.nbytes() for s in storages.values())


def optimizer_state_tensors(optimizer: torch.optim.Optimizer) -> Iterator[torch.Tensor]:
    """Every tensor in ``optimizer.state`` (moments, momentum buffers, step counters)."""
    for state in optimizer.state.values():
        yield from (v for v in state.values() if isinstance(v, torch.Tensor))


class SavedTensors:
    """The distinct storages autograd saves for backward inside ``with saved.record():``.

    Storages of ``exclude`` (the model's parameters and buffers) are left out; the ones seen
    are held until this object goes, so no address is reused and counted once for two storages.
    """

    def __init__(self, exclude: Iterable[torch.Tensor] = ()) -> None:
        self._exclude = {_storage_key(t) for t in exclude}
        self._storages: dict[tuple[torch.device, int], torch.UntypedStorage] = {}

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        try:
            key = _storage_key(t)
        except (RuntimeError, NotImplementedError):  # sparse, nested; torch.compile's tracing
            return t  # (a compiled graph calls the hook again with the real tensors it saves)
        if key not in self._exclude:
            self._storages.setdefault(key, t.untyped_storage())
        return t

    @contextmanager
    def record(self) -> Iterator[SavedTensors]:
        with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t):
            yield self

    def nbytes(self) -> int:
        return sum(s.nbytes() for s in self._storages.values())


def measure_train_memory(step: TrainStep) -> TrainMemoryStats:
    """Peak of one full ``step()`` on its device, and its parts, after a warm-up step.

    The parts come from a step of their own: saved tensors are recorded during its forward and
    loss, gradients read after its backward; the peak is then taken on a plain step.
    """
    model = step.model
    step()  # warm-up: the optimizer state exists from here on
    saved = SavedTensors(exclude=[*model.parameters(), *model.buffers()])
    with saved.record():  # under torch.compile: what the compiled graph saves
        loss = step.loss()
    saved_bytes = saved.nbytes()
    del saved  # let backward free what was saved
    step.backward(loss)
    del loss
    grads_bytes = storage_bytes(p.grad for p in model.parameters() if p.grad is not None)
    step.update()
    return TrainMemoryStats(
        peak=measure_peak_memory(step, device=step.device),
        weights_bytes=storage_bytes(model.parameters()),
        grads_bytes=grads_bytes,
        optimizer_bytes=storage_bytes(optimizer_state_tensors(step.optimizer)),
        saved_bytes=saved_bytes,
    )
