"""What `vitbench profile` measures and how: the options, checked before anything is built.

Torch-free at import, so the command line can load it without loading torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitbench.device import check_device
from vitbench.errors import CheckpointError, VitbenchError

METRICS = ("params", "flops", "latency", "memory")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
#: device types a profile runs on (an index may follow: cuda:1); meta counts without weights
DEVICES = ("cpu", "cuda", "mps", "xpu", "meta")


@dataclass(frozen=True)
class ProfileOptions:
    """What to measure and how. Defaults give a quick, honest CPU profile."""

    metrics: frozenset[str] = frozenset(METRICS)
    batch_sizes: Sequence[int] = (1,)
    img_sizes: Sequence[int | None] = (None,)
    patch_sizes: Sequence[int | None] = (None,)
    seq_lens: Sequence[int | None] = (None,)
    in_chans: int | None = None
    num_classes: int | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    precision: str = "fp32"  # fp32 | tf32 | fp16 | bf16 (the last two through autocast)
    threads: int | None = None  # CPU threads; None keeps torch's default
    channels_last: bool = False
    compile: bool = False
    fused_attn: bool | None = None  # None: the model's default (timm: fused)
    cudnn_benchmark: bool = False
    warmup: int = 3
    budget_s: float = 2.0
    min_runs: int = 5
    max_runs: int = 1000
    rel_precision: float = 0.02
    noise_cv: float = 0.10
    oom_backoff: bool = True
    peak_tflops: float | None = None
    pretrained: bool = False
    checkpoint: str | None = None
    breakdown_depth: int = 0  # >0: per-module MACs at this depth, in `macs_by_module`

    def validate(self) -> None:
        """Raise :class:`VitbenchError` for options no measurement can satisfy.

        Checks only the options themselves (and that a checkpoint file exists), so it runs
        before a store is opened or a model is built.
        """
        bad = set(self.metrics) - set(METRICS)
        if bad:
            raise VitbenchError(
                f"unknown metric(s) {', '.join(sorted(bad))}; choose from {', '.join(METRICS)}"
            )
        if self.precision not in PRECISIONS:
            raise VitbenchError(
                f"unknown precision '{self.precision}'; choose from {', '.join(PRECISIONS)}"
            )
        self._validate_sizes()
        self._validate_timing()
        self._validate_device()
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise CheckpointError(f"checkpoint not found: {self.checkpoint}")

    def _validate_sizes(self) -> None:
        """Sizes, channels, classes and threads: positive (classes may be 0: no head)."""
        for name, values in (
            ("batch size", self.batch_sizes),
            ("image size", self.img_sizes),
            ("patch size", self.patch_sizes),
            ("sequence length", self.seq_lens),
        ):
            for v in values:
                if v is not None and v < 1:
                    raise VitbenchError(f"{name} must be a positive integer, got {v}")
        _at_least("in_chans", self.in_chans, 1)
        _at_least("num_classes", self.num_classes, 0)
        _at_least("threads", self.threads, 1)

    def _validate_timing(self) -> None:
        """Warm-up, run counts, budget and precision target that a timing can meet."""
        _at_least("warmup", self.warmup, 0)
        _at_least("min_runs", self.min_runs, 1)
        _at_least("max_runs", self.max_runs, self.min_runs, f"min_runs ({self.min_runs})")
        if self.budget_s <= 0:
            raise VitbenchError(f"budget_s (the time budget) must be positive, got {self.budget_s}")
        if self.rel_precision <= 0:
            raise VitbenchError(f"rel_precision must be positive, got {self.rel_precision}")

    def _validate_device(self) -> None:
        """A device type vitbench knows, present here, and able to do what is asked."""
        kind = check_device(self.device, DEVICES)
        if kind == "meta" and self.timed:
            raise VitbenchError(
                "device 'meta' has no data: it counts params and flops only, "
                "and cannot time or measure memory"
            )
        if kind == "cpu" and self.precision == "fp16" and self.timed:
            raise VitbenchError("fp16 autocast is a CUDA setting; on CPU use bf16 or fp32")

    @property
    def timed(self) -> bool:
        return bool({"latency", "memory"} & set(self.metrics))

    @property
    def n_shapes(self) -> int:
        """Shapes per model: image sizes x patch sizes x sequence lengths."""
        return len(self.img_sizes) * len(self.patch_sizes) * len(self.seq_lens)


def _at_least(name: str, value: float | None, low: float, low_text: str | None = None) -> None:
    """Refuse ``value`` below ``low`` (None is the default and passes)."""
    if value is not None and value < low:
        raise VitbenchError(f"{name} must be at least {low_text or low}, got {value}")
