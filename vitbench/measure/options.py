"""What `vitbench profile` measures and how: the options, checked before anything is built.

Torch-free at import, so the command line can load it without loading torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vitbench.device import check_device, resolve_device
from vitbench.errors import CheckpointError, VitbenchError
from vitbench.model_options import (
    check_input_size,
    imports_option,
    input_size_option,
    proportional_attn_option,
    prune_option,
    tome_option,
    tome_schedule_option,
)
from vitbench.options import at_least, int_list, one_of, option, parse_kwargs
from vitbench.precision import check_precision

if TYPE_CHECKING:
    from vitbench.token_reduction import TokenReduction

METRICS = ("params", "flops", "latency", "memory")
#: what else a metric may be called: throughput and MFU come with the latency
METRIC_ALIASES = {"throughput": "latency", "mfu": "latency", "macs": "flops"}
#: what a point measures: an inference forward, or a training step (forward, loss, backward,
#: optimizer step)
MODES = ("infer", "train")
#: the optimizer of a training step
OPTIMIZERS = ("adamw", "sgd")
#: device types a profile runs on (an index may follow: cuda:1); meta counts without weights
DEVICES = ("cpu", "cuda", "mps", "xpu", "meta")


def parse_metrics(text: str) -> frozenset[str]:
    """``'latency,macs'`` -> the metrics named (aliases resolved), params always among them."""
    chosen = {METRIC_ALIASES.get(m.strip(), m.strip()) for m in text.split(",") if m.strip()}
    return frozenset(chosen | {"params"})


def parse_modes(text: str) -> tuple[str, ...]:
    """``'train,infer'`` -> ``('train', 'infer')``, repeats dropped (checked by ``validate``)."""
    return tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))


@dataclass(frozen=True)
class ProfileOptions:
    """What to measure and how; each field is also an option of ``vitbench profile``.

    The defaults give a quick, honest CPU profile.
    """

    metrics: frozenset[str] = option(
        frozenset(METRICS),
        help="What to measure: params,flops,latency,memory (params,flops never times anything).",
        parse=parse_metrics,
        text_default=",".join(METRICS),
    )
    modes: Sequence[str] = option(
        ("infer",),
        flags=("--mode",),
        help="infer, train, or both as infer,train: an inference forward, or a training step "
        "(forward, loss, backward, optimizer step).",
        parse=parse_modes,
        text_default="infer",
    )
    optimizer: str = option("adamw", help="The training step's optimizer: adamw or sgd.")
    grad_checkpointing: bool = option(
        False, help="Recompute activations in the training step's backward (timm models)."
    )
    batch_sizes: Sequence[int] = option(
        (1,),
        flags=("--batch-size", "-b"),
        help="Batch sizes, e.g. 1,8,32.",
        parse=int_list("batch sizes"),
        text_default="1",
    )
    img_sizes: Sequence[int | None] = option(
        (None,),
        flags=("--img-size",),
        help="Image sizes to sweep, e.g. 112,224.",
        parse=int_list("image sizes"),
    )
    patch_sizes: Sequence[int | None] = option(
        (None,),
        flags=("--patch-size",),
        help="Patch sizes to sweep, e.g. 8,16.",
        parse=int_list("patch sizes"),
    )
    seq_lens: Sequence[int | None] = option(
        (None,),
        flags=("--seq-len",),
        help="Sequence lengths (token models).",
        parse=int_list("sequence lengths"),
    )
    tome: Sequence[int | None] = tome_option(points=True)
    tome_schedule: str = tome_schedule_option()
    proportional_attn: bool = proportional_attn_option()
    prune: Sequence[float | None] = prune_option(points=True)
    in_chans: int | None = option(None, help="Input channels override.")
    num_classes: int | None = option(None, help="Classifier classes override.")
    model_kwargs: dict[str, Any] = option(
        default_factory=dict,
        help="timm keyword overrides, e.g. 'depth=6,embed_dim=384'.",
        parse=parse_kwargs,
    )
    input_size: tuple[int, int, int] | None = input_size_option()
    imports: list[str] | None = imports_option()
    device: str | None = option(None, help="cpu or cuda (default: cuda when available).")
    precision: str = option("fp32", help="fp32, tf32, fp16 or bf16 (autocast).")
    threads: int | None = option(None, help="CPU threads (applied and recorded).")
    channels_last: bool = option(False, help="Channels-last memory format.")
    compile: bool = option(False, flags=("--compile",), help="torch.compile the model.")
    fused_attn: bool | None = option(
        None,
        flags=("--fused-attn/--no-fused-attn",),
        help="Force timm's fused attention on or off (default: the model's).",
    )
    cudnn_benchmark: bool = option(False, help="Let cuDNN autotune per shape.")
    warmup: int = option(3, help="Warm-up calls after the first call, not timed.")
    budget_s: float = option(
        2.0, flags=("--budget",), help="Seconds of timed calls per point at most, all rounds."
    )
    rounds: int = option(
        3,
        help="Timing rounds per point, interleaved across the sweep (all points, then all "
        "again); the point's figure is the median of the rounds' medians.",
    )
    min_runs: int = option(5, help="Timed calls at least.")
    max_runs: int = option(1000, help="Timed calls at most.")
    rel_precision: float = option(
        0.02, help="Stop when the 95% CI of the median is within this fraction of it."
    )
    noise_cv: float = option(
        0.10, help="Flag a point's timing as noisy when its per-call CV is above this."
    )
    oom_backoff: bool = option(
        True, help="On out-of-memory, record it and retry at half the batch size."
    )
    peak_tflops: float | None = option(
        None, help="Peak TFLOP/s for MFU (else the datasheet table, else measured)."
    )
    pretrained: bool = option(
        False, help="Load published weights (timm's, or torchvision's from the torch hub cache)."
    )
    checkpoint: str | None = option(None, help="Weights file (safetensors or torch, weights only).")
    breakdown_depth: int = option(
        0, flags=("--breakdown",), help="Per-module MACs at this depth (e.g. 1 or 2)."
    )

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
        check_precision(self.precision)
        self._validate_modes()
        self._validate_sizes()
        self._validate_timing()
        self._validate_device()
        self.reductions()  # each point checked
        if self.checkpoint is not None and not Path(self.checkpoint).is_file():
            raise CheckpointError(f"checkpoint not found: {self.checkpoint}")

    def _validate_modes(self) -> None:
        """Known modes and optimizer; training options only where a training step runs."""
        bad = [m for m in self.modes if m not in MODES]
        if bad or not self.modes:
            raise VitbenchError(
                f"unknown mode(s) {', '.join(bad) or '(none)'}; choose from {', '.join(MODES)}"
            )
        one_of("optimizer", self.optimizer, OPTIMIZERS)
        if self.grad_checkpointing and "train" not in self.modes:
            raise VitbenchError("grad_checkpointing applies to a training step: add mode train")

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
        if None in self.batch_sizes:
            raise VitbenchError("batch_sizes must name at least one batch size")
        at_least("in_chans", self.in_chans, 1)
        at_least("num_classes", self.num_classes, 0)
        at_least("threads", self.threads, 1)
        check_input_size(self.input_size)

    def _validate_timing(self) -> None:
        """Warm-up, run counts, budget and precision target that a timing can meet."""
        at_least("warmup", self.warmup, 0)
        at_least("min_runs", self.min_runs, 1)
        at_least("rounds", self.rounds, 1)
        at_least("max_runs", self.max_runs, self.min_runs, f"min_runs ({self.min_runs})")
        if self.budget_s <= 0:
            raise VitbenchError(f"budget_s (the time budget) must be positive, got {self.budget_s}")
        for name in ("rel_precision", "noise_cv"):
            if getattr(self, name) <= 0:
                raise VitbenchError(f"{name} must be positive, got {getattr(self, name)}")

    def _validate_device(self) -> None:
        """A device type vitbench knows, present here, and able to do what is asked."""
        kind = check_device(resolve_device(self.device), DEVICES)
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
    def passes(self) -> int:
        """How many times the sweep goes over its shapes: once per timing round."""
        return self.rounds if "latency" in self.metrics else 1

    @property
    def points_per_shape(self) -> int:
        """Points of one shape before out-of-memory back-off: modes x batch sizes."""
        return len(self.modes) * len(self.batch_sizes)

    @property
    def n_shapes(self) -> int:
        """Shapes per model: image sizes x patch sizes x sequence lengths x token reductions."""
        sizes = len(self.img_sizes) * len(self.patch_sizes) * len(self.seq_lens)
        return sizes * len(self.reductions())

    def reductions(self) -> list[TokenReduction | None]:
        """The token reduction points, each checked: the plain model (None), each r, each keep
        rate (:func:`vitbench.zoo.reduction.reduction_points`)."""
        from vitbench.zoo.reduction import reduction_points

        return reduction_points(
            self.tome, self.prune, schedule=self.tome_schedule, proportional=self.proportional_attn
        )
