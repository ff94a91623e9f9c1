"""A profile's sweep: count each shape, then time every point in rounds interleaved across it.

Round 1 counts each shape on the meta device, builds it on the device and measures memory and a
first timing of each batch size. Rounds 2..R time every point again in the same order (all
points once, then all again), so load that comes and goes lands in different rounds of a point.
A point is stored when its last round is in; one whose rounds disagree is measured again, at
most :data:`~vitbench.measure.rounds.EXTRA_ROUNDS` times, after the others, then stored flagged
if it still disagrees. Untimed rows (counts only, out-of-memory) are stored at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from vitbench.measure.machine import around, read_machine
from vitbench.measure.model_cost import ModelCost, count_model
from vitbench.measure.options import ProfileOptions
from vitbench.measure.point import (
    PeakCache,
    build_timed_model,
    first_round,
    free_memory,
    is_oom,
    latency_fields,
    mode_fields,
    model_macs,
    time_round,
    timed_call,
    uncounted_text,
)
from vitbench.measure.rounds import EXTRA_ROUNDS, RoundStats, combine_rounds
from vitbench.measure.timing import TimingStats
from vitbench.measure.train_step import enable_grad_checkpointing
from vitbench.zoo import ModelSpec, create_model, not_applied, set_fused_attn
from vitbench.zoo.reduction import NONE, reduction_fields, tokens_per_layer
from vitbench.zoo.weights import check_fits, checkpoint_shapes

#: (description, shapes done) -> None, before each count and each timing
OnStep = Callable[[str, int], None]
Row = dict[str, Any]


@dataclass
class _Point:
    """A timed point waiting for its rounds: its row so far and what was measured."""

    spec: ModelSpec
    row: Row  # with its mode and batch size
    macs: int | None  # per sample: the forward's for inference, the step's for training
    rounds: list[TimingStats]
    readings: list[dict[str, float | None]]  # the machine, before and after each round
    extra: int = 0  # re-measures after the planned rounds


@dataclass
class Sweep:
    """One run's measuring: hands each finished row to ``emit``."""

    opts: ProfileOptions
    how: Row  # how the points ran: device, precision, threads, ...
    peak: PeakCache
    emit: Callable[[Row], None]
    on_step: OnStep | None = None
    done: int = 0  # shapes counted, then shapes timed again, round by round
    pending: list[_Point] = field(default_factory=list)
    readings: list[dict[str, float | None]] = field(default_factory=list)  # all, for warnings
    _model: tuple[ModelSpec, nn.Module] | None = None  # the last model built, kept for reuse

    @property
    def device(self) -> torch.device:
        return torch.device(self.opts.device)

    def step(self, text: str) -> None:
        if self.on_step:
            self.on_step(text, self.done)

    def shape(self, spec: ModelSpec) -> None:
        """Round 1 of one shape: count it, then measure it at every batch size."""
        opts = self.opts
        self.step(f"{spec.name} {shape_label(spec)}: counting")
        meta_model = create_model(spec, device="meta")
        if opts.checkpoint is not None and not opts.timed:  # timed: create_model checks it
            check_fits(meta_model, checkpoint_shapes(opts.checkpoint), opts.checkpoint)
        fused = set_fused_attn(meta_model, opts.fused_attn)
        if opts.grad_checkpointing:  # the recompute shows in the training count
            enable_grad_checkpointing(meta_model, spec.name)
        counted = "flops" in opts.metrics
        cost = count_model(
            spec, model=meta_model, macs=counted, train=counted and "train" in opts.modes
        )
        static = {**static_record(spec, cost, opts), **self.how, "fused_attn": fused}
        if opts.reductions() != [None]:  # a run with token reduction points says where each is
            static.update(reduction_fields(spec.reduction))
            static["tokens_per_layer"] = tokens_per_layer(meta_model, spec.reduction)
        del meta_model
        model = self.model_for(spec) if opts.timed else None
        for mode in opts.modes:
            fields = {**static, **mode_fields(mode, opts, cost)}
            for batch_size in opts.batch_sizes:
                self.batch(spec, model, cost, fields, batch_size)
        self.done += 1

    def batch(
        self, spec: ModelSpec, model: nn.Module | None, cost: ModelCost, static: Row, b: int
    ) -> None:
        """One batch size; after an out-of-memory, half of it again, when asked to."""
        while True:
            row = {**static, "batch_size": b}
            if cost.macs is not None:
                row["macs_batch"] = cost.macs * b
            if model is None:
                self.emit(row)
                return
            mode = row["mode"]
            self.step(f"{spec.name} {shape_label(spec)}: {mode} batch {b}")
            before = self.read()
            rec, stats = first_round(model, spec, b, mode, self.opts)
            row.update(rec)
            macs = model_macs(mode, cost)
            if stats is not None:
                self.add(_Point(spec, row, macs, [stats], [before, self.read()]))
            else:
                self.emit(row)
            if row["status"] != "oom" or not self.opts.oom_backoff or b == 1:
                return
            b = max(1, b // 2)

    def add(self, point: _Point) -> None:
        """A point after its first round: stored now if that was its only round."""
        if self.opts.rounds > 1:
            self.pending.append(point)
        else:
            self.finish(point)

    def settle(self) -> None:
        """Rounds 2..R over every pending point, then re-measures of the disagreeing ones."""
        for r in range(2, self.opts.rounds + 1):
            self.round(final=r == self.opts.rounds)
        for _ in range(EXTRA_ROUNDS):
            if not self.pending:
                break
            for point in self.pending:
                point.extra += 1
            self.round(final=True)
        self.flush()
        self.release()

    def round(self, *, final: bool) -> None:
        """One more timing of every pending point, shape by shape; store those it settles."""
        for spec, points in _by_shape(self.pending):
            model = self.model_for(spec)
            for point in points:
                self.step(f"{spec.name} {shape_label(spec)}: round {len(point.rounds) + 1}")
                if not self.time_again(model, point) or (final and self.settled(point)):
                    self.pending.remove(point)
                    self.finish(point)
            self.done += 1

    def time_again(self, model: nn.Module, point: _Point) -> bool:
        """One more round of ``point``; False when the device ran out of memory for it."""
        try:
            call = timed_call(model, point.spec, point.row, self.opts)
            point.readings.append(self.read())
            point.rounds.append(time_round(call, self.opts))
            point.readings.append(self.read())
            return True
        except Exception as exc:
            if not is_oom(exc):
                raise
            free_memory(self.device)
            return False

    def settled(self, point: _Point) -> bool:
        """Its rounds agree, or it has had all its re-measures."""
        return point.extra >= EXTRA_ROUNDS or not self.combined(point).disagree

    def combined(self, point: _Point) -> RoundStats:
        return combine_rounds(
            point.rounds,
            rel_precision=self.opts.rel_precision,
            noise_cv=self.opts.noise_cv,
            extra_rounds=point.extra,
        )

    def finish(self, point: _Point) -> None:
        """Store a point with what its rounds say and the machine around them."""
        b = point.row["batch_size"]
        stats = self.combined(point)
        timing = latency_fields(stats, b, point.macs, self.opts, self.peak)
        self.emit({**point.row, **timing, **around(point.readings[0], point.readings[-1])})

    def flush(self) -> None:
        """Store every pending point with the rounds it has (after a failure, or at the end)."""
        while self.pending:
            self.finish(self.pending.pop(0))

    def read(self) -> dict[str, float | None]:
        reading = read_machine(self.device)
        self.readings.append(reading)
        return reading

    def model_for(self, spec: ModelSpec) -> nn.Module:
        """The timed model of ``spec``: the one kept if it is that shape, else a new one."""
        if self._model is not None and self._model[0] == spec:
            return self._model[1]
        self.release()
        model = build_timed_model(spec, self.opts)
        self._model = (spec, model)
        return model

    def release(self) -> None:
        self._model = None
        free_memory(self.device)


def _by_shape(points: list[_Point]) -> Iterator[tuple[ModelSpec, list[_Point]]]:
    """Consecutive points of one shape, in sweep order (a copy: points leave as they settle)."""
    groups: list[tuple[ModelSpec, list[_Point]]] = []
    for point in points:
        if groups and groups[-1][0] == point.spec:
            groups[-1][1].append(point)
        else:
            groups.append((point.spec, [point]))
    yield from groups


def static_record(spec: ModelSpec, cost: ModelCost, opts: ProfileOptions) -> Row:
    """Fields that do not depend on batch size or device."""
    rec: Row = {
        "model": spec.name,
        "img_size": cost.input_size[-1] if len(cost.input_size) == 3 else None,
        "img_height": cost.input_size[-2] if len(cost.input_size) == 3 else None,
        "in_chans": cost.input_size[0] if len(cost.input_size) == 3 else None,
        "patch_size": spec.kwargs.get("patch_size"),
        "seq_len": spec.kwargs.get("seq_len"),
        "model_kwargs": dict(spec.kwargs) or None,
        "tokens": cost.tokens,
        "tokens_at": cost.tokens_at,
        "params": cost.params,
        "params_trainable": cost.params_trainable,
        "weights": weights_of(spec, opts),
        "not_applied": ", ".join(not_applied(spec)) or None,
    }
    if cost.macs is not None:
        rec.update(
            macs=cost.macs,  # per sample, as timm and the papers report
            activations=cost.activations,
            flop_convention="MAC: one multiply-add = 1; norms 5/elem (fvcore)",
            uncounted_ops=uncounted_text(cost.uncounted),
        )
        if opts.breakdown_depth and cost.count is not None:
            rec["macs_by_module"] = cost.count.module_breakdown(opts.breakdown_depth)
    return rec


def weights_of(spec: ModelSpec, opts: ProfileOptions) -> str:
    """Where a row's weights come from: random, pretrained, checkpoint or module (built)."""
    if spec.module is not None:
        return "module"
    return "checkpoint" if opts.checkpoint else "pretrained" if opts.pretrained else "random"


def shape_label(spec: ModelSpec) -> str:
    parts = []
    if spec.img_size is not None:
        parts.append(f"img {spec.img_size}")
    for key in ("patch_size", "seq_len"):
        if key in spec.kwargs:
            parts.append(f"{key.split('_')[0]} {spec.kwargs[key]}")
    fields = reduction_fields(spec.reduction)
    if fields["reduction"] != NONE:
        value = fields.get("tome_r", fields.get("prune_keep"))
        parts.append(f"{fields['reduction']} {value}")
    return " ".join(parts) or "default size"
