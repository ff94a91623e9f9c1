"""Machine readings: the CPU clock from sysfs or /proc/cpuinfo, and warnings when they move."""

from __future__ import annotations

from pathlib import Path

import torch

from vitbench.measure.machine import changes, cpu_mhz, read_machine


def _cpu_root(tmp: Path, khz: list[int] | None, cpuinfo: str | None) -> Path:
    if khz is not None:
        for i, value in enumerate(khz):
            d = tmp / f"sys/devices/system/cpu/cpu{i}/cpufreq"
            d.mkdir(parents=True)
            (d / "scaling_cur_freq").write_text(f"{value}\n")
    if cpuinfo is not None:
        (tmp / "proc").mkdir()
        (tmp / "proc/cpuinfo").write_text(cpuinfo)
    return tmp


def test_cpu_clock_from_cpufreq_in_khz(tmp_path) -> None:
    root = _cpu_root(tmp_path, [2_400_000, 3_000_000], "cpu MHz\t\t: 1000.0\n")
    assert cpu_mhz(root) == 2700.0  # sysfs wins: the mean of 2400 and 3000 MHz


def test_cpu_clock_from_cpuinfo_without_cpufreq(tmp_path) -> None:
    info = "processor\t: 0\ncpu MHz\t\t: 2596.134\nprocessor\t: 1\ncpu MHz\t\t: 2000.0\n"
    assert cpu_mhz(_cpu_root(tmp_path, None, info)) == (2596.134 + 2000.0) / 2


def test_no_clock_reported_is_none(tmp_path) -> None:
    assert cpu_mhz(_cpu_root(tmp_path, None, None)) is None
    (tmp_path / "x").mkdir()
    assert cpu_mhz(_cpu_root(tmp_path / "x", None, "model name\t: a VM\n")) is None


def test_a_cpu_reading_has_no_gpu_fields() -> None:
    reading = read_machine(torch.device("cpu"))
    assert reading["gpu_clock_mhz"] is None and reading["gpu_temp_c"] is None
    assert reading["load_1m"] is None or reading["load_1m"] >= 0


def _reading(load: float, mhz: float | None = 2600.0) -> dict:
    return {"load_1m": load, "cpu_mhz": mhz, "gpu_clock_mhz": None, "gpu_temp_c": None}


def test_changes_name_what_moved_beyond_its_limit() -> None:
    assert changes([_reading(0.2), _reading(0.9), _reading(0.5)]) == []
    said = changes([_reading(0.2), _reading(2.1)])
    assert len(said) == 1 and said[0].startswith("load_1m moved from 0.2 to 2.1")
    clock = changes([_reading(0.2, 2600.0), _reading(0.2, 2200.0)])  # -15%
    assert len(clock) == 1 and clock[0].startswith("cpu_mhz moved from 2200 to 2600")
    assert changes([_reading(0.2, None), _reading(0.3, 2600.0)]) == []  # one clock reading
