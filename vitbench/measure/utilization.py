"""Achieved FLOP/s and model-FLOPs utilization (MFU) against a peak keyed by device and dtype.

vitbench counts MACs (one multiply-add = 1, the fvcore/timm convention); FLOP/s here use
FLOPs = 2 x MACs. MFU follows PaLM (Chowdhery et al. 2022, appendix B): the model's FLOPs per
second over the hardware's dense peak for the precision used. See docs/methodology/utilization.md.
"""

from __future__ import annotations

import re
import time

import torch

_A100 = "NVIDIA A100 Tensor Core GPU datasheet (dense; sparse figures are 2x)"
_A10 = "NVIDIA A10 Tensor Core GPU datasheet (dense; sparse figures are 2x)"
_H100 = "NVIDIA H100 Tensor Core GPU Architecture whitepaper, table 1 (dense)"
_H200 = "NVIDIA H200 Tensor Core GPU datasheet (sparse figures halved)"
_L4 = "NVIDIA L4 Tensor Core GPU datasheet (sparse figures halved)"
_V100 = "NVIDIA Tesla V100 GPU datasheet (tensor: FP16 multiply, FP32 accumulate)"
_T4 = "NVIDIA T4 Tensor Core GPU datasheet (mixed precision FP16/FP32)"
_ADA = "NVIDIA Ada GPU Architecture whitepaper, appendix (dense, FP32 accumulate)"
_AMPERE = "NVIDIA Ampere GA102 GPU Architecture whitepaper, appendix (dense, FP32 accumulate)"

#: (device-name substring, precision) -> (dense peak TFLOP/s, source). Tensor-core figures are
#: dense and, for GeForce cards, with FP32 accumulate (what PyTorch's fp16/bf16 matmuls use).
#: A precision the hardware has no fast path for (V100/T4: tf32, bf16) is left out.
PEAK_TFLOPS: dict[tuple[str, str], tuple[float, str]] = {
    # Hopper; "H100 80GB HBM3" is how CUDA names the SXM5 part
    ("H100 80GB HBM3", "fp32"): (66.9, _H100 + ", H100 SXM5"),
    ("H100 80GB HBM3", "tf32"): (494.7, _H100 + ", H100 SXM5"),
    ("H100 80GB HBM3", "fp16"): (989.4, _H100 + ", H100 SXM5"),
    ("H100 80GB HBM3", "bf16"): (989.4, _H100 + ", H100 SXM5"),
    ("H100 SXM", "fp32"): (66.9, _H100 + ", H100 SXM5"),
    ("H100 SXM", "tf32"): (494.7, _H100 + ", H100 SXM5"),
    ("H100 SXM", "fp16"): (989.4, _H100 + ", H100 SXM5"),
    ("H100 SXM", "bf16"): (989.4, _H100 + ", H100 SXM5"),
    ("H100 PCIe", "fp32"): (51.2, _H100 + ", H100 PCIe"),
    ("H100 PCIe", "tf32"): (378.0, _H100 + ", H100 PCIe"),
    ("H100 PCIe", "fp16"): (756.0, _H100 + ", H100 PCIe"),
    ("H100 PCIe", "bf16"): (756.0, _H100 + ", H100 PCIe"),
    ("H200", "fp32"): (67.0, _H200 + ", H200 SXM"),
    ("H200", "tf32"): (494.5, _H200 + ", H200 SXM"),
    ("H200", "fp16"): (989.5, _H200 + ", H200 SXM"),
    ("H200", "bf16"): (989.5, _H200 + ", H200 SXM"),
    # Ampere; A100 40GB/80GB, SXM4 and PCIe share these peaks
    ("A100", "fp32"): (19.5, _A100),
    ("A100", "tf32"): (156.0, _A100),
    ("A100", "fp16"): (312.0, _A100),
    ("A100", "bf16"): (312.0, _A100),
    ("A10", "fp32"): (31.2, _A10),
    ("A10", "tf32"): (62.5, _A10),
    ("A10", "fp16"): (125.0, _A10),
    ("A10", "bf16"): (125.0, _A10),
    ("RTX 3090", "fp32"): (35.6, _AMPERE + ", RTX 3090"),
    ("RTX 3090", "tf32"): (35.6, _AMPERE + ", RTX 3090"),
    ("RTX 3090", "fp16"): (71.0, _AMPERE + ", RTX 3090"),
    ("RTX 3090", "bf16"): (71.0, _AMPERE + ", RTX 3090"),
    # Ada
    ("L4", "fp32"): (30.3, _L4),
    ("L4", "tf32"): (60.0, _L4),
    ("L4", "fp16"): (121.0, _L4),
    ("L4", "bf16"): (121.0, _L4),
    ("RTX 4090", "fp32"): (82.6, _ADA + ", RTX 4090"),
    ("RTX 4090", "tf32"): (82.6, _ADA + ", RTX 4090"),
    ("RTX 4090", "fp16"): (165.2, _ADA + ", RTX 4090"),
    ("RTX 4090", "bf16"): (165.2, _ADA + ", RTX 4090"),
    # Volta and Turing: no TF32 or BF16 tensor cores
    ("V100-SXM2", "fp32"): (15.7, _V100 + ", V100 SXM2"),
    ("V100-SXM2", "fp16"): (125.0, _V100 + ", V100 SXM2"),
    ("V100-PCIE", "fp32"): (14.0, _V100 + ", V100 PCIe"),
    ("V100-PCIE", "fp16"): (112.0, _V100 + ", V100 PCIe"),
    ("V100S", "fp32"): (16.4, _V100 + ", V100S PCIe"),
    ("V100S", "fp16"): (130.0, _V100 + ", V100S PCIe"),
    ("T4", "fp32"): (8.1, _T4),
    ("T4", "fp16"): (65.0, _T4),
}

#: words after a model name that make it a different part (RTX 3090 Ti, RTX 4090 D, H200 NVL, a
#: laptop chip): such names never match the base entry
_VARIANTS = r"Ti|SUPER|D|NVL|Laptop|Mobile|Max-Q"


def _matches(key: str, device_name: str) -> bool:
    """``key`` occurs in ``device_name`` as whole words and not followed by a variant word."""
    pattern = rf"(?<![A-Za-z0-9]){re.escape(key)}(?![A-Za-z0-9]|[ -](?:{_VARIANTS})(?![A-Za-z0-9]))"
    return re.search(pattern, device_name, flags=re.IGNORECASE) is not None


def lookup_peak_tflops(device_name: str, precision: str) -> tuple[float, str] | None:
    """(dense peak TFLOP/s, source) for a CUDA device name, or None for unknown hardware.

    The longest matching key wins; unknown names and precisions give None, never a guess.
    """
    hits = [key for key, prec in PEAK_TFLOPS if prec == precision and _matches(key, device_name)]
    if not hits:
        return None
    return PEAK_TFLOPS[(max(hits, key=len), precision)]


def achieved_tflops(macs: int, seconds: float) -> float:
    """TFLOP/s achieved by ``macs`` multiply-adds in ``seconds`` (2 FLOPs per MAC)."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    return 2 * macs / seconds / 1e12


def model_flops_utilization(macs: int, seconds: float, peak_tflops: float | None) -> float | None:
    """Achieved model FLOP/s over the peak (a fraction); None when the peak is unknown."""
    if peak_tflops is None or peak_tflops <= 0:
        return None
    return achieved_tflops(macs, seconds) / peak_tflops


def measure_cpu_matmul_peak(
    threads: int | None = None,
    dtype: torch.dtype = torch.float32,
    n: int = 1024,
    budget_s: float = 1.0,
) -> float:
    """Best TFLOP/s of an (n x n) @ (n x n) matmul on the CPU over ``budget_s`` seconds.

    Runs on ``threads`` intra-op threads (the current count when None) and restores the
    previous count afterwards. A measured ceiling, not a datasheet peak.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=gen).to(dtype)  # (n, n)
        b = torch.randn(n, n, generator=gen).to(dtype)  # (n, n)
        out = torch.empty(n, n, dtype=dtype)
        torch.mm(a, b, out=out)  # warm-up: thread pool, packing buffers
        times: list[float] = []
        start = time.perf_counter()
        while len(times) < 3 or time.perf_counter() - start < budget_s:  # best of >= 3
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(previous)
    return achieved_tflops(n**3, min(times))
