"""Where a measurement came from: the machine and software (the ``env_*`` columns every stored
row carries), the run id and the time.

torch and timm are imported inside the functions that need them, so reading a store (the
report) never loads them.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import uuid
from typing import Any

from vitbench import __version__


def new_run_id() -> str:
    """A short unique id shared by every row that one command invocation writes."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str | Any = "cpu") -> str:
    """Human-readable name of the hardware behind a torch device string."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(dev)
    if dev.type == "meta":
        return "meta (no hardware)"
    return _cpu_name()


def environment(device: str | Any = "cpu") -> dict[str, Any]:
    """The environment a measurement came from, as flat ``env_*`` columns."""
    import timm
    import torch

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    return {
        "env_vitbench": __version__,
        "env_torch": torch.__version__,
        "env_timm": timm.__version__,
        "env_python": platform.python_version(),
        "env_platform": platform.platform(terse=True),
        "env_host": socket.gethostname(),
        "env_device_type": dev.type,
        "env_device": device_name(dev),
        "env_threads": torch.get_num_threads(),
        "env_cpu_count": os.cpu_count(),
        # CUDA settings are missing (NULL), not empty text, for a CPU run
        "env_cuda": torch.version.cuda if cuda else None,
        "env_cudnn": torch.backends.cudnn.version() if cuda else None,
        "env_tf32_matmul": torch.backends.cuda.matmul.allow_tf32 if cuda else None,
        "env_cudnn_benchmark": torch.backends.cudnn.benchmark if cuda else None,
    }
