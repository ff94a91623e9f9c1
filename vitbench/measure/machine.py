"""What the machine was doing around a timing: load, CPU clock, and on CUDA the GPU clock, heat.

Each reading is what the OS or the driver reports, or None where it reports nothing (no
``os.getloadavg`` on Windows, no CPU clock in a VM without cpufreq or ``cpu MHz``, no NVML).
A sweep compares its readings and warns when they moved enough to move timings.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

#: the reading's fields, as stored: ``<field>_before`` and ``<field>_after`` on each row
FIELDS = ("load_1m", "cpu_mhz", "gpu_clock_mhz", "gpu_temp_c")
#: how far a reading may move over a sweep before timings are suspect: an absolute step for the
#: load (one more busy core) and the temperature, a fraction of the first reading for clocks
CHANGE_LIMITS = {"load_1m": 1.0, "cpu_mhz": 0.10, "gpu_clock_mhz": 0.10, "gpu_temp_c": 10.0}
RELATIVE = ("cpu_mhz", "gpu_clock_mhz")


def read_machine(device: torch.device) -> dict[str, float | None]:
    """One reading: 1-minute load average, mean CPU clock, and the GPU's clock and temperature."""
    gpu = device.type == "cuda"
    return {
        "load_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "cpu_mhz": cpu_mhz(),
        "gpu_clock_mhz": _nvml(torch.cuda.clock_rate, device) if gpu else None,
        "gpu_temp_c": _nvml(torch.cuda.temperature, device) if gpu else None,
    }


def cpu_mhz(root: Path = Path("/")) -> float | None:
    """The mean current clock over the CPUs: cpufreq (kHz) where present, else /proc/cpuinfo."""
    freqs = sorted((root / "sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"))
    values = [_number(p.read_text()) for p in freqs]
    if values and None not in values:
        return sum(values) / len(values) / 1e3  # type: ignore[arg-type]
    try:
        lines = (root / "proc/cpuinfo").read_text().splitlines()
    except OSError:
        return None
    mhz = [_number(line.split(":", 1)[1]) for line in lines if line.startswith("cpu MHz")]
    mhz = [m for m in mhz if m is not None]
    return sum(mhz) / len(mhz) if mhz else None


def _number(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _nvml(read: Any, device: torch.device) -> float | None:
    """A torch.cuda reading that goes through NVML; None without NVML or a driver that answers."""
    try:
        return float(read(device))
    except Exception:  # pynvml missing, or NVML not supported on this device
        return None


def around(before: dict[str, float | None], after: dict[str, float | None]) -> dict[str, Any]:
    """The record's fields for the readings taken before and after a point."""
    out: dict[str, Any] = {}
    for field in FIELDS:
        out[f"{field}_before"] = before[field]
        out[f"{field}_after"] = after[field]
    return out


def changes(readings: Sequence[dict[str, float | None]]) -> list[str]:
    """One sentence per reading that moved beyond its limit over ``readings``, else nothing."""
    said = []
    for field in FIELDS:
        values = [r[field] for r in readings if r.get(field) is not None]
        if len(values) < 2:
            continue
        low, high = min(values), max(values)
        moved = (high - low) / values[0] if field in RELATIVE and values[0] else high - low
        if moved > CHANGE_LIMITS[field]:
            said.append(
                f"{field} moved from {low:.4g} to {high:.4g} during the sweep; "
                "timings taken under different conditions may differ (see latency_noisy)"
            )
    return said
