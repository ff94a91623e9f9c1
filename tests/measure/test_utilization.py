"""Utilization: FLOP/s arithmetic, the peak table's lookups and consistency, the CPU matmul peak."""

from __future__ import annotations

import pytest
import torch

from vitbench.measure.utilization import (
    PEAK_TFLOPS,
    achieved_tflops,
    lookup_peak_tflops,
    measure_cpu_matmul_peak,
    model_flops_utilization,
)
from vitbench.precision import PRECISIONS


def test_achieved_tflops_counts_two_flops_per_mac():
    assert achieved_tflops(10**12, 1.0) == pytest.approx(2.0)
    assert achieved_tflops(17_580_000_000, 0.01) == pytest.approx(3.516)  # ViT-B/16 in 10 ms
    with pytest.raises(ValueError):
        achieved_tflops(1, 0.0)


def test_mfu():
    assert model_flops_utilization(5 * 10**11, 1.0, 10.0) == pytest.approx(0.1)
    # ViT-B/16 batch 256 in 100 ms on an A100 at bf16: 2 x 17.58e9 x 256 / 0.1 / 312e12
    assert model_flops_utilization(17_580_000_000 * 256, 0.1, 312.0) == pytest.approx(0.28849, 1e-4)
    assert model_flops_utilization(10**12, 1.0, None) is None


@pytest.mark.parametrize(
    ("name", "precision", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", "bf16", 989.4),
        ("NVIDIA H100 80GB HBM3", "fp32", 66.9),
        ("NVIDIA H100 PCIe", "fp16", 756.0),
        ("NVIDIA H200", "tf32", 494.5),
        ("NVIDIA A100-SXM4-80GB", "bf16", 312.0),
        ("NVIDIA A100-PCIE-40GB", "tf32", 156.0),
        ("NVIDIA A10", "fp16", 125.0),
        ("NVIDIA L4", "bf16", 121.0),
        ("Tesla V100-SXM2-16GB", "fp16", 125.0),
        ("Tesla V100-PCIE-32GB", "fp32", 14.0),
        ("Tesla T4", "fp16", 65.0),
        ("NVIDIA GeForce RTX 4090", "bf16", 165.2),
        ("NVIDIA GeForce RTX 3090", "fp32", 35.6),
    ],
)
def test_lookup_known_devices(name, precision, tflops):
    value, source = lookup_peak_tflops(name, precision)
    assert value == tflops and source


@pytest.mark.parametrize(
    ("name", "precision"),
    [
        ("cpu", "fp32"),
        ("NVIDIA H100 NVL", "bf16"),  # a different part: no guess from the SXM entry
        ("NVIDIA H200 NVL", "bf16"),
        ("NVIDIA GH200 480GB", "bf16"),
        ("NVIDIA A10G", "fp16"),  # not the A10
        ("NVIDIA L40S", "bf16"),  # not the L4
        ("NVIDIA GeForce RTX 3090 Ti", "fp16"),
        ("NVIDIA GeForce RTX 4090 D", "fp16"),
        ("NVIDIA GeForce RTX 4090 Laptop GPU", "fp16"),
        ("Tesla T4", "bf16"),  # no bf16 tensor cores
        ("NVIDIA A100-SXM4-80GB", "fp8"),
    ],
)
def test_lookup_unknown_gives_none(name, precision):
    assert lookup_peak_tflops(name, precision) is None


def test_peak_table_is_consistent():
    devices = {key for key, _ in PEAK_TFLOPS}
    for (_, precision), (tflops, source) in PEAK_TFLOPS.items():
        assert precision in PRECISIONS and tflops > 0 and source
    for key in devices:
        peaks = {p: PEAK_TFLOPS[(key, p)][0] for p in PRECISIONS if (key, p) in PEAK_TFLOPS}
        assert peaks["fp16"] >= peaks["fp32"]  # tensor cores at least match the FP32 units
        if "bf16" in peaks:
            assert peaks["bf16"] == peaks["fp16"]
        if "tf32" in peaks:
            assert peaks["fp32"] <= peaks["tf32"] <= peaks["fp16"]


def test_cpu_matmul_peak_positive_and_threads_restored():
    before = torch.get_num_threads()
    tflops = measure_cpu_matmul_peak(threads=1, n=128, budget_s=0.02)
    assert 0 < tflops < 100  # any CPU core is below 100 TFLOP/s
    assert torch.get_num_threads() == before
