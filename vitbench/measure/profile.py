"""`vitbench profile` as a library: sweep models over sizes and measure each point.

For every model and every point of the sweep (image size x patch size x sequence length x batch
size) one record is produced, and stored the moment it exists. Static costs (parameters,
tokens, MACs) are counted on the meta device; latency, throughput, memory and utilization are
measured on the chosen device. The options live in :mod:`vitbench.measure.options`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vitbench.device import resolve_device
from vitbench.environment import device_name, environment
from vitbench.measure.memory import measure_peak_memory
from vitbench.measure.model_cost import ModelCost, count_model, example_inputs
from vitbench.measure.options import METRICS, ProfileOptions
from vitbench.measure.scaling import fit_scaling
from vitbench.measure.timing import set_threads, time_callable
from vitbench.measure.utilization import (
    achieved_tflops,
    lookup_peak_tflops,
    measure_cpu_matmul_peak,
    model_flops_utilization,
)
from vitbench.precision import autocast
from vitbench.store import Recorder, Store
from vitbench.zoo import ModelSpec, create_model, set_fused_attn, with_checkpoint_spec
from vitbench.zoo.weights import check_fits, checkpoint_shapes

__all__ = ["METRICS", "ProfileOptions", "ProfileRun", "measure_point", "profile"]


def sweep_specs(name: str, opts: ProfileOptions) -> Iterator[ModelSpec]:
    """The model specs of the sweep for one model (batch size is applied later)."""
    for img, patch, seq in itertools.product(opts.img_sizes, opts.patch_sizes, opts.seq_lens):
        kwargs = dict(opts.model_kwargs)
        if patch is not None:
            kwargs["patch_size"] = patch
        if seq is not None:
            kwargs["seq_len"] = seq
        spec = ModelSpec(
            name, img_size=img, in_chans=opts.in_chans, num_classes=opts.num_classes, kwargs=kwargs
        )
        # the meta-device count must build the shape the checkpoint's weights have
        yield with_checkpoint_spec(spec, opts.checkpoint)


def _configure_backends(device: torch.device, opts: ProfileOptions) -> None:
    if device.type == "cuda":
        # fp32 means true fp32: TF32 only when asked for (timm's benchmark turns it on silently)
        torch.backends.cuda.matmul.allow_tf32 = opts.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = opts.precision == "tf32"
        torch.backends.cudnn.benchmark = opts.cudnn_benchmark


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def _free_memory(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def static_record(spec: ModelSpec, cost: ModelCost, opts: ProfileOptions) -> dict[str, Any]:
    """Fields that do not depend on batch size or device."""
    rec: dict[str, Any] = {
        "model": spec.name,
        "img_size": cost.input_size[-1] if len(cost.input_size) == 3 else None,
        "img_height": cost.input_size[-2] if len(cost.input_size) == 3 else None,
        "in_chans": cost.input_size[0] if len(cost.input_size) == 3 else None,
        "patch_size": spec.kwargs.get("patch_size"),
        "seq_len": spec.kwargs.get("seq_len"),
        "model_kwargs": dict(spec.kwargs) or None,
        "tokens": cost.tokens,
        "params": cost.params,
        "params_trainable": cost.params_trainable,
    }
    if cost.macs is not None:
        rec.update(
            macs=cost.macs,  # per sample, as timm and the papers report
            activations=cost.activations,
            flop_convention="MAC: one multiply-add = 1; norms 5/elem (fvcore)",
            uncounted_ops=";".join(f"{k}x{v}" for k, v in sorted(cost.uncounted.items())) or None,
        )
        if opts.breakdown_depth and cost.count is not None:
            rec["macs_by_module"] = cost.count.module_breakdown(opts.breakdown_depth)
    return rec


class _PeakCache:
    """The utilization denominator: a table value, the user's, or a measured CPU matmul peak."""

    def __init__(self, opts: ProfileOptions, device: torch.device) -> None:
        self.opts, self.device = opts, device
        self._value: tuple[float | None, str] | None = None

    def get(self) -> tuple[float | None, str]:
        if self._value is None:
            if self.opts.peak_tflops is not None:
                self._value = (self.opts.peak_tflops, "user (peak_tflops)")
            elif self.device.type == "cpu":
                dtype = torch.bfloat16 if self.opts.precision == "bf16" else torch.float32
                peak = measure_cpu_matmul_peak(threads=torch.get_num_threads(), dtype=dtype)
                self._value = (peak, f"measured {str(dtype)[6:]} matmul on this CPU")
            else:
                hit = lookup_peak_tflops(device_name(self.device), self.opts.precision)
                self._value = hit if hit else (None, "unknown hardware: give peak_tflops")
        return self._value


def measure_point(
    model: nn.Module,
    spec: ModelSpec,
    batch_size: int,
    macs_per_sample: int | None,
    opts: ProfileOptions,
    peak: _PeakCache,
) -> dict[str, Any]:
    """Time and measure memory of one forward pass at ``batch_size``; OOM becomes a record."""
    device = torch.device(opts.device)
    rec: dict[str, Any] = {"batch_size": batch_size, "status": "ok"}
    try:
        inputs = example_inputs(model, spec, batch_size, device)
        if opts.channels_last and inputs[0].dim() == 4:
            inputs = (inputs[0].contiguous(memory_format=torch.channels_last), *inputs[1:])

        def forward() -> object:
            with torch.inference_mode(), autocast(device.type, opts.precision):
                return model(*inputs)

        if "latency" in opts.metrics:
            stats = time_callable(
                forward,
                device=device,
                warmup=opts.warmup,
                min_runs=opts.min_runs,
                max_runs=opts.max_runs,
                budget_s=opts.budget_s,
                rel_precision=opts.rel_precision,
                noise_cv=opts.noise_cv,
            )
            rec.update(stats.as_record())
            if opts.compile:
                rec["compile_s"] = stats.first_call_s
            rec["throughput_sps"] = batch_size / stats.median_s
            if macs_per_sample is not None:
                macs = macs_per_sample * batch_size
                rec["achieved_tflops"] = achieved_tflops(macs, stats.median_s)
                tflops, source = peak.get()
                rec["peak_tflops"] = tflops
                rec["peak_source"] = source
                rec["mfu"] = model_flops_utilization(macs, stats.median_s, tflops)
        if "memory" in opts.metrics:
            rec.update(measure_peak_memory(forward, device=device).as_record())
    except Exception as exc:
        if not _is_oom(exc):
            raise
        _free_memory(device)
        rec.update(status="oom", error=str(exc).strip().splitlines()[0][:200])
    return rec


def _build_timed_model(spec: ModelSpec, opts: ProfileOptions) -> nn.Module:
    device = torch.device(opts.device)
    model = create_model(
        spec, device=device, pretrained=opts.pretrained, checkpoint=opts.checkpoint
    )
    set_fused_attn(model, opts.fused_attn)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if opts.compile:
        model = torch.compile(model)
    return model


#: (description, shapes done) -> None, before each count and each timing
OnStep = Callable[[str, int], None]
#: the stamped row of a point, right after it is stored
OnRecord = Callable[[dict[str, Any]], None]


@dataclass
class ProfileRun:
    """What one profile run stored: its id, one row per point, and the power-law fits."""

    run_id: str
    records: list[dict[str, Any]]
    fits: list[dict[str, Any]]


@dataclass
class _Sweep:
    """One run's measuring: counts and times each shape, hands each row to ``emit``."""

    opts: ProfileOptions
    how: dict[str, Any]  # how the points ran: device, precision, threads, ...
    peak: _PeakCache
    emit: Callable[[dict[str, Any]], None]
    on_step: OnStep | None = None
    done: int = 0  # shapes finished

    def step(self, text: str) -> None:
        if self.on_step:
            self.on_step(text, self.done)

    def shape(self, spec: ModelSpec) -> None:
        """Count one model at one shape, then time it at every batch size."""
        opts = self.opts
        self.step(f"{spec.name} {_shape_label(spec)}: counting")
        meta_model = create_model(spec, device="meta")
        if opts.checkpoint is not None and not opts.timed:  # timed: create_model checks it
            check_fits(meta_model, checkpoint_shapes(opts.checkpoint), opts.checkpoint)
        fused = set_fused_attn(meta_model, opts.fused_attn)
        cost = count_model(spec, model=meta_model, macs="flops" in opts.metrics)
        del meta_model
        static = static_record(spec, cost, opts)
        model = _build_timed_model(spec, opts) if opts.timed else None
        for batch_size in opts.batch_sizes:
            self.batch(spec, model, cost, static, fused, batch_size)
        del model
        _free_memory(torch.device(opts.device))
        self.done += 1

    def batch(
        self,
        spec: ModelSpec,
        model: nn.Module | None,
        cost: ModelCost,
        static: dict[str, Any],
        fused: bool | None,
        batch_size: int,
    ) -> None:
        """One batch size; after an out-of-memory, half of it again, when asked to."""
        b = batch_size
        while True:
            row = {**static, "batch_size": b, **self.how, "fused_attn": fused}
            if cost.macs is not None:
                row["macs_batch"] = cost.macs * b
            if model is not None:
                self.step(f"{spec.name} {_shape_label(spec)}: timing batch {b}")
                row.update(measure_point(model, spec, b, cost.macs, self.opts, self.peak))
            self.emit(row)
            if model is None or row["status"] != "oom" or not self.opts.oom_backoff or b == 1:
                return
            b = max(1, b // 2)


def profile(
    models: Sequence[str],
    opts: ProfileOptions = ProfileOptions(),
    *,
    store: Store | None = None,
    on_step: OnStep | None = None,
    on_record: OnRecord | None = None,
) -> ProfileRun:
    """Profile resolved model names over the sweep; one row per model, shape and batch size.

    Each row is numbered (``point``), stamped with the run id and the environment, stored in
    ``store`` in its own transaction as soon as it is measured, and then passed to
    ``on_record``; the power-law fits follow in one transaction after the last point. With no
    store the rows are stamped alike and nothing is written. If a model fails, the rows before
    it are stored and the exception propagates. ``on_step(description, shapes_done)`` is called
    before each count and each timing, for progress displays.
    """
    opts.validate()
    opts = dataclasses.replace(opts, device=resolve_device(opts.device))
    device = torch.device(opts.device)
    threads = set_threads(opts.threads) if device.type == "cpu" else torch.get_num_threads()
    _configure_backends(device, opts)
    recorder = Recorder(store, environment(device))
    records: list[dict[str, Any]] = []

    def emit(row: dict[str, Any]) -> None:
        stamped = recorder.write("profile", [{**row, "point": len(records)}])[0]
        records.append(stamped)
        if on_record:
            on_record(stamped)

    how = {
        "device": device_name(device),
        "device_type": device.type,
        "precision": opts.precision,
        "threads": threads,
        "channels_last": opts.channels_last,
        "compiled": opts.compile,
    }
    sweep = _Sweep(opts, how, _PeakCache(opts, device), emit, on_step)
    for name in models:
        for spec in sweep_specs(name, opts):
            sweep.shape(spec)
    fits = recorder.write("profile_fit", fit_scaling(records))
    return ProfileRun(recorder.run_id, records, fits)


def _shape_label(spec: ModelSpec) -> str:
    parts = []
    if spec.img_size is not None:
        parts.append(f"img {spec.img_size}")
    for key in ("patch_size", "seq_len"):
        if key in spec.kwargs:
            parts.append(f"{key.split('_')[0]} {spec.kwargs[key]}")
    return " ".join(parts) or "default size"
