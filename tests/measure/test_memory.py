"""Peak memory: known allocations and a hand-counted MLP give known peaks, and they reset."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitbench.measure.memory import (
    CPU_METHOD,
    CUDA_METHOD,
    MemoryStats,
    SavedTensors,
    TrainMemoryStats,
    live_tensor_bytes,
    measure_peak_memory,
    optimizer_state_tensors,
    peak_of_deltas,
    storage_bytes,
)

MiB = 2**20


def _alloc_64_free_alloc_32(device: str = "cpu") -> torch.Tensor:
    a = torch.empty(64 * MiB, dtype=torch.uint8, device=device).fill_(1)
    del a
    return torch.empty(32 * MiB, dtype=torch.uint8, device=device).fill_(1)


def test_peak_of_deltas():
    assert peak_of_deltas([64, -64, 32]) == 64
    assert peak_of_deltas([10, 5, -12, 20]) == 23
    assert peak_of_deltas([-16, 8]) == 0  # frees of older tensors never push the peak below 0
    assert peak_of_deltas([]) == 0


def test_cpu_peak_of_known_allocations_and_reset():
    live_at_peak: list[int] = []

    def alloc_64_look_free_alloc_32() -> torch.Tensor:
        a = torch.empty(64 * MiB, dtype=torch.uint8).fill_(1)
        live_at_peak.append(live_tensor_bytes("cpu"))  # gc's count at the peak, not the profiler's
        del a
        return torch.empty(32 * MiB, dtype=torch.uint8).fill_(1)

    for run in range(2):  # the second call's peak is its own, not the first one's
        stats = measure_peak_memory(alloc_64_look_free_alloc_32)
        assert stats.method == CPU_METHOD and stats.reserved_bytes is None
        assert stats.peak_over_baseline_bytes == pytest.approx(64 * MiB, abs=MiB // 4)
        assert stats.peak_bytes == pytest.approx(live_at_peak[run], abs=MiB // 4)


def test_cpu_baseline_counts_live_tensors():
    held = torch.ones(16 * MiB, dtype=torch.uint8)
    stats = measure_peak_memory(_alloc_64_free_alloc_32)
    assert stats.baseline_bytes >= held.nbytes
    assert stats.peak_bytes >= held.nbytes + 64 * MiB


def test_cpu_peak_of_an_mlp_matches_hand_count():
    # inference: Linear(256->1024) out and ReLU out are both alive at the peak; the second
    # Linear's (64, 256) output comes after the first is freed: peak = 2 x 64 x 1024 x 4 bytes
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(256, 1024), nn.ReLU(), nn.Linear(1024, 256)).eval()
    x = torch.randn(64, 256)

    def forward():
        with torch.inference_mode():
            return mlp(x)

    stats = measure_peak_memory(forward)
    assert stats.peak_over_baseline_bytes == pytest.approx(2 * 64 * 1024 * 4, rel=0.02)
    weights = sum(p.numel() for p in mlp.parameters()) * 4
    assert stats.baseline_bytes >= weights + x.nbytes


def test_live_tensor_bytes_counts_views_once():
    before = live_tensor_bytes("cpu")
    base = torch.empty(MiB, dtype=torch.uint8)
    views = [base[:10], base.view(1024, 1024), base[1:]]  # noqa: F841 (kept alive)
    assert live_tensor_bytes("cpu") - before == MiB


def test_record_fields():
    rec = measure_peak_memory(lambda: torch.ones(1024)).as_record()
    assert set(rec) == {
        "memory_peak_bytes",
        "memory_peak_over_baseline_bytes",
        "memory_baseline_bytes",
        "memory_reserved_bytes",
        "memory_method",
    }
    assert rec["memory_peak_over_baseline_bytes"] == 4096


def test_storage_bytes_counts_views_once():
    base = torch.empty(1024)  # 4096 bytes
    other = torch.empty(10, dtype=torch.float64)  # 80 bytes
    assert storage_bytes([base, base[:10], base.view(32, 32), base.view(32, 32).t()]) == 4096
    assert storage_bytes([base, other, other[1:]]) == 4096 + 80
    assert storage_bytes([]) == 0


def test_saved_tensors_counts_each_storage_once_and_leaves_out_exclusions():
    x = torch.randn(4, 8, requires_grad=True)  # 128 bytes
    w = torch.randn(8, 8, requires_grad=True)  # 256 bytes
    saved = SavedTensors()
    with saved.record():
        # x * x saves x twice (one storage); exp saves its (4, 8) output; x @ w saves x and w
        (x * x).exp().sum() + (x @ w).sum()
    assert saved.nbytes() == 128 + 128 + 256
    left_out = SavedTensors(exclude=[w])
    with left_out.record():
        (x @ w).sum()
    assert left_out.nbytes() == 128


def test_optimizer_state_tensors_after_one_step():
    p = torch.nn.Parameter(torch.zeros(3, 5))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    assert list(optimizer_state_tensors(opt)) == []  # no state before the first step
    p.grad = torch.ones_like(p)
    opt.step()
    assert storage_bytes(optimizer_state_tensors(opt)) == 3 * 5 * 4  # the momentum buffer


def test_train_record_fields():
    peak = MemoryStats(peak_bytes=10, reserved_bytes=None, baseline_bytes=4, method=CPU_METHOD)
    rec = TrainMemoryStats(peak, weights_bytes=1, grads_bytes=2, optimizer_bytes=3, saved_bytes=5)
    assert rec.as_record() == {
        "train_memory_peak_bytes": 10,
        "train_memory_baseline_bytes": 4,
        "train_memory_reserved_bytes": None,
        "train_memory_weights_bytes": 1,
        "train_memory_grads_bytes": 2,
        "train_memory_optimizer_bytes": 3,
        "train_memory_saved_bytes": 5,
        "train_memory_method": CPU_METHOD,
        "train_memory_parts_method": "tensor sizes",
        "train_memory_saved_method": "saved-tensor hooks",
    }


def test_unsupported_device():
    with pytest.raises(ValueError):
        measure_peak_memory(lambda: None, device="meta")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_peak_of_known_allocations_and_reset():
    held = torch.ones(8 * MiB, dtype=torch.uint8, device="cuda")
    for _ in range(2):
        stats = measure_peak_memory(lambda: _alloc_64_free_alloc_32("cuda"), device="cuda")
        assert stats.method == CUDA_METHOD
        assert stats.baseline_bytes >= held.nbytes
        assert stats.peak_over_baseline_bytes == pytest.approx(64 * MiB, abs=MiB)
        assert stats.reserved_bytes >= stats.peak_bytes
