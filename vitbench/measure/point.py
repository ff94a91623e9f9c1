"""One point of a profile: a built model at one batch size, its memory and its timing rounds."""

from __future__ import annotations

import copy
import dataclasses
import gc
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from vitbench.environment import device_name
from vitbench.measure.memory import measure_peak_memory, measure_train_memory
from vitbench.measure.model_cost import ModelCost, example_inputs
from vitbench.measure.options import ProfileOptions
from vitbench.measure.rounds import RoundStats
from vitbench.measure.timing import TimingStats, time_callable
from vitbench.measure.train_step import build_train_step
from vitbench.measure.utilization import (
    achieved_tflops,
    lookup_peak_tflops,
    measure_cpu_matmul_peak,
    model_flops_utilization,
)
from vitbench.precision import autocast
from vitbench.zoo import ModelSpec, create_model, set_fused_attn

#: how a training step's MACs are counted (see docs/methodology/flops.md)
TRAIN_CONVENTION = (
    "forward as macs; backward: each product's input and weight gradient 1x each, norms' input "
    "gradient as forward + weight gradient 1/elem; optimizer step excluded"
)


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is the device (or the host) running out of memory."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
    )


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def build_timed_model(spec: ModelSpec, opts: ProfileOptions) -> nn.Module:
    """The model on the profile's device, with its weights and execution settings.

    A built module is timed itself, or a copy of it when training steps are timed (they
    change the weights).
    """
    device = torch.device(opts.device)
    if spec.module is not None and "train" in opts.modes:
        spec = dataclasses.replace(spec, module=copy.deepcopy(spec.module))
    model = create_model(
        spec, device=device, pretrained=opts.pretrained, checkpoint=opts.checkpoint
    )
    set_fused_attn(model, opts.fused_attn)
    if opts.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if opts.compile:
        model = torch.compile(model)
    return model


def forward_pass(
    model: nn.Module, spec: ModelSpec, batch_size: int, opts: ProfileOptions
) -> Callable[[], object]:
    """A call of one inference forward at ``batch_size``, inputs made once."""
    device = torch.device(opts.device)
    inputs = example_inputs(model, spec, batch_size, device, channels_last=opts.channels_last)

    def forward() -> object:
        with torch.inference_mode(), autocast(device.type, opts.precision):
            return model(*inputs)

    return forward


def time_round(forward: Callable[[], object], opts: ProfileOptions) -> TimingStats:
    """One timing round: the point's budget is shared by its rounds."""
    return time_callable(
        forward,
        device=opts.device,
        warmup=opts.warmup,
        min_runs=opts.min_runs,
        max_runs=opts.max_runs,
        budget_s=opts.budget_s / opts.rounds,
        rel_precision=opts.rel_precision,
        noise_cv=opts.noise_cv,
    )


def mode_fields(mode: str, opts: ProfileOptions, cost: ModelCost) -> dict[str, Any]:
    """What a row of ``mode`` says about how it ran, and the training step's MACs per sample."""
    if mode == "infer":
        return {"mode": mode}
    rec: dict[str, Any] = {
        "mode": mode,
        "optimizer": opts.optimizer,
        "grad_checkpointing": opts.grad_checkpointing,
    }
    if cost.train is not None:
        rec.update(
            train_macs=cost.train_macs,
            train_recompute_macs=cost.train.recompute,  # counted at batch 1: per sample
            train_flop_convention=TRAIN_CONVENTION,
            train_uncounted_ops=uncounted_text(cost.train.uncounted),
        )
    return rec


def uncounted_text(counts: dict[str, int]) -> str | None:
    """Operators the MAC counter has no rule for, as ``'op1x3;op2x1'``; None when none."""
    return ";".join(f"{k}x{v}" for k, v in sorted(counts.items())) or None


def model_macs(mode: str, cost: ModelCost) -> int | None:
    """MACs per sample that utilization divides by: the forward's, or the training step's
    without the recompute of gradient checkpointing (model FLOPs, not hardware FLOPs)."""
    if mode == "infer" or cost.train is None:
        return cost.macs if mode == "infer" else None
    return cost.train_macs - cost.train.recompute  # counted at batch 1


def timed_call(
    model: nn.Module, spec: ModelSpec, row: dict[str, Any], opts: ProfileOptions
) -> Callable[[], object]:
    """What one point times: an inference forward, or one training step, at its batch size."""
    if row["mode"] == "train":
        return build_train_step(
            model,
            spec,
            row["batch_size"],
            device=opts.device,
            optimizer=opts.optimizer,
            precision=opts.precision,
            channels_last=opts.channels_last,
            grad_checkpointing=opts.grad_checkpointing,
        )
    if opts.grad_checkpointing:  # the inference forward runs as the model would in use
        model.set_grad_checkpointing(False)
    model.eval()
    return forward_pass(model, spec, row["batch_size"], opts)


def first_round(
    model: nn.Module, spec: ModelSpec, batch_size: int, mode: str, opts: ProfileOptions
) -> tuple[dict[str, Any], TimingStats | None]:
    """Memory and the first timing round of a point; out-of-memory becomes the record."""
    device = torch.device(opts.device)
    rec: dict[str, Any] = {"batch_size": batch_size, "status": "ok"}
    try:
        call = timed_call(model, spec, {"mode": mode, "batch_size": batch_size}, opts)
        stats = time_round(call, opts) if "latency" in opts.metrics else None
        if "memory" in opts.metrics:
            rec.update(_memory(call, mode, device))
        return rec, stats
    except Exception as exc:
        if not is_oom(exc):
            raise
        free_memory(device)
        rec.update(status="oom", error=str(exc).strip().splitlines()[0][:200])
        return rec, None


def _memory(call: Callable[[], object], mode: str, device: torch.device) -> dict[str, Any]:
    """The peak of one forward, or the training step's peak split into its parts."""
    if mode == "train":
        return measure_train_memory(call).as_record()  # type: ignore[arg-type]
    return measure_peak_memory(call, device=device).as_record()


def latency_fields(
    stats: RoundStats,
    batch_size: int,
    macs_per_sample: int | None,
    opts: ProfileOptions,
    peak: PeakCache,
) -> dict[str, Any]:
    """The timing fields of a row: the rounds' statistics, throughput and utilization."""
    rec = stats.as_record()
    if opts.compile:
        rec["compile_s"] = stats.rounds[0].first_call_s
    rec["throughput_sps"] = batch_size / stats.median_s
    if macs_per_sample is not None:
        macs = macs_per_sample * batch_size
        rec["achieved_tflops"] = achieved_tflops(macs, stats.median_s)
        tflops, source = peak.get()
        rec["peak_tflops"] = tflops
        rec["peak_source"] = source
        rec["mfu"] = model_flops_utilization(macs, stats.median_s, tflops)
    return rec


class PeakCache:
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
