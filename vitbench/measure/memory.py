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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

CUDA_METHOD = "cuda-allocator"
CPU_METHOD = "profiler-memory-events"


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
        except (RuntimeError, NotImplementedError):  # sparse, nested, some subclasses
            continue
        if storage.data_ptr():
            storages[storage.data_ptr()] = storage.nbytes()
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
