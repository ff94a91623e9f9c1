"""`vitbench profile` as a library: sweep models over sizes and measure each point.

A model is a name (any spec :func:`vitbench.zoo.resolve_name` takes) or a built ``nn.Module``,
as fvcore and ptflops take it. For every model and every point of the sweep (image size x patch
size x sequence length x token reduction x batch size) one record is produced, and stored the
moment its last timing round is in. Static costs
(parameters, tokens, MACs) are counted on the meta device; latency, throughput, memory and
utilization are measured on the chosen device, the latency in rounds interleaved across the
sweep (:mod:`vitbench.measure.sweep`). The options live in :mod:`vitbench.measure.options`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vitbench.device import resolve_device
from vitbench.environment import device_name, environment
from vitbench.errors import VitbenchError
from vitbench.measure.machine import changes
from vitbench.measure.options import METRICS, ProfileOptions
from vitbench.measure.point import PeakCache
from vitbench.measure.scaling import fit_scaling
from vitbench.measure.sweep import OnStep, Sweep
from vitbench.measure.timing import set_threads
from vitbench.store import Recorder, Store
from vitbench.token_reduction.settings import NONE
from vitbench.zoo import ModelSpec, load_imports, resolve_name, with_checkpoint_spec
from vitbench.zoo.reduction import check_reductions

__all__ = ["METRICS", "ProfileOptions", "ProfileRun", "profile"]

#: the costs fitted against tokens for each mode, per model and batch size
FITTED = {
    "infer": ("macs", "latency_median_ms", "memory_peak_over_baseline_bytes"),
    "train": (
        "train_macs",
        "latency_median_ms",
        "train_memory_peak_bytes",
        "train_memory_saved_bytes",
    ),
}
FIT_GROUPS = ("model", "batch_size", "mode")
#: the stamped row of a point, right after it is stored
OnRecord = Callable[[dict[str, Any]], None]


def sweep_specs(name: str, opts: ProfileOptions) -> Iterator[ModelSpec]:
    """The model specs of the sweep for one model (batch size is applied later): each shape at
    each token reduction point (the plain model first)."""
    reductions = opts.reductions()
    for img, patch, seq in itertools.product(opts.img_sizes, opts.patch_sizes, opts.seq_lens):
        kwargs = dict(opts.model_kwargs)
        if patch is not None:
            kwargs["patch_size"] = patch
        if seq is not None:
            kwargs["seq_len"] = seq
        spec = ModelSpec(
            name,
            img_size=img,
            in_chans=opts.in_chans,
            num_classes=opts.num_classes,
            kwargs=kwargs,
            input_size=opts.input_size,
        )
        # the meta-device count must build the shape the checkpoint's weights have
        spec = with_checkpoint_spec(spec, opts.checkpoint)
        for reduction in reductions:
            yield dataclasses.replace(spec, reduction=reduction)


def model_specs(
    models: Sequence[str | nn.Module], opts: ProfileOptions, model_name: str | None = None
) -> list[ModelSpec]:
    """Every spec of the sweep: a name's sizes, or a built module's one shape, each at every
    token reduction point.

    A built module is named ``model_name`` or by its class and keeps the shape and weights it
    has: the options that would rebuild it are refused, and its input is its declared size or
    ``input_size``. Token reduction is applied to copies of it.
    """
    modules = [m for m in models if isinstance(m, nn.Module)]
    if modules:
        _check_module_options(opts)
    if model_name is not None and len(modules) != 1:
        raise VitbenchError("model_name names a built module: give exactly one with it")
    specs: list[ModelSpec] = []
    for m in models:
        if isinstance(m, nn.Module):
            name = model_name or type(m).__name__
            specs.extend(
                ModelSpec(name, input_size=opts.input_size, module=m, reduction=r)
                for r in opts.reductions()
            )
        else:
            specs.extend(sweep_specs(resolve_name(m), opts))
    return specs


def _check_module_options(opts: ProfileOptions) -> None:
    """A built module cannot be rebuilt at other sizes or with other weights."""
    rebuilds = [
        name
        for name, given in (
            ("img_size", opts.img_sizes != (None,)),
            ("patch_size", opts.patch_sizes != (None,)),
            ("seq_len", opts.seq_lens != (None,)),
            ("in_chans", opts.in_chans is not None),
            ("num_classes", opts.num_classes is not None),
            ("model_kwargs", bool(opts.model_kwargs)),
            ("pretrained", opts.pretrained),
            ("checkpoint", opts.checkpoint is not None),
        )
        if given
    ]
    if rebuilds:
        raise VitbenchError(
            f"a built module keeps its shape and weights: {', '.join(rebuilds)} apply to model "
            "names (give input_size for its input)"
        )


def _configure_backends(device: torch.device, opts: ProfileOptions) -> None:
    if device.type == "cuda":
        # fp32 means true fp32: TF32 only when asked for (timm's benchmark turns it on silently)
        torch.backends.cuda.matmul.allow_tf32 = opts.precision == "tf32"
        torch.backends.cudnn.allow_tf32 = opts.precision == "tf32"
        torch.backends.cudnn.benchmark = opts.cudnn_benchmark


@dataclass
class ProfileRun:
    """What one profile run stored: its id, one row per point, the power-law fits, warnings."""

    run_id: str
    records: list[dict[str, Any]]
    fits: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)  # the machine changed during the sweep


def profile(
    models: Sequence[str | nn.Module],
    opts: ProfileOptions = ProfileOptions(),
    *,
    store: Store | None = None,
    on_step: OnStep | None = None,
    on_record: OnRecord | None = None,
    model_name: str | None = None,
) -> ProfileRun:
    """Profile models over the sweep; one row per model, shape and batch size.

    ``models``: names (after the packages of ``opts.imports`` are imported) or built modules
    (see :func:`model_specs`; ``model_name`` names a single one).

    Each row is numbered (``point``), stamped with the run id and the environment, stored in
    ``store`` in its own transaction as soon as it is measured, and then passed to
    ``on_record``; the power-law fits follow in one transaction after the last point. With no
    store the rows are stamped alike and nothing is written. If a model fails, the rows before
    it are stored and the exception propagates. ``on_step(description, shapes_done)`` is called
    before each count and each timing, for progress displays.
    """
    opts.validate()
    load_imports(opts.imports)
    specs = model_specs(models, opts, model_name)
    check_reductions(specs)
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
    sweep = Sweep(opts, how, PeakCache(opts, device), emit, on_step)
    _run(sweep, specs)
    fits = recorder.write("profile_fit", _fits(records))
    return ProfileRun(recorder.run_id, records, fits, changes(sweep.readings))


def _fits(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Power-law fits of each mode's costs against tokens, over the plain model's points: a
    token-reduced point enters its first layer with the plain model's tokens at a lower cost,
    so it would bend the fit of the model's growth."""
    plain = [r for r in records if r.get("reduction", NONE) == NONE]
    return [
        fit
        for mode, ys in FITTED.items()
        for fit in fit_scaling(
            [r for r in plain if r.get("mode") == mode], ys=ys, group_by=FIT_GROUPS
        )
    ]


def _run(sweep: Sweep, specs: list[ModelSpec]) -> None:
    """Every shape's first round, then the later rounds; on a failure, store what was measured."""
    try:
        for spec in specs:
            sweep.shape(spec)
        sweep.settle()
    except Exception:
        sweep.flush()  # the points measured so far, with the rounds they have
        raise
