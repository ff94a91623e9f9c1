"""``train(config)``: one training run from data to stored results, resumable, data-parallel.

A run given an open results store writes, as it goes:

- to ``train_epochs``: one row per epoch as soon as the epoch ends (train/val loss and accuracy,
  lr, image size, images/s), each in its own transaction;
- to ``token_reduction``: at the end, when the config names points (``tome``, ``prune``), one
  row per point: the trained weights tested with that token merging or pruning (test accuracy
  and loss, images/s of the test pass, MACs and tokens per block), the plain model first;
- to ``train_runs``: one row at the end (test accuracy as a fraction, confusion matrix, most
  confused pairs, params, MACs, normalisation statistics, the config; with a teacher, each
  head's accuracy and the teacher's; with weights EMA, the average's accuracy);
- under ``<store.artifacts>/runs/<run_id>/``: ``last.safetensors`` (full state, rewritten every
  epoch, for ``resume``), ``model.safetensors`` (final weights with their config),
  ``ema.safetensors`` (the weights' average, when kept), ``curves.png``, ``confusion.png``.

What differs by ``task`` comes from :mod:`vitbench.train.task`: a segmentation run scores
pixels where a classifier scores images, adds mIoU and each class's IoU to its rows, and draws
``overlays.png`` (also stored in ``figures``).

The run is claimed in the store while it trains, so it is resumed by one process at a time.
Under ``torchrun`` every process trains on its shard; only rank 0 touches the store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from vitbench.environment import environment, new_run_id
from vitbench.errors import VitbenchError
from vitbench.precision import autocast
from vitbench.store import Claim, Recorder, Store, claim
from vitbench.store.claims import DONE
from vitbench.train import checkpoint as ckpt
from vitbench.train import distributed, plots
from vitbench.train.config import TrainConfig
from vitbench.train.data import DataBundle
from vitbench.train.distill import DistillationLoss, build_teacher, has_dist_head
from vitbench.train.engine import BatchHook, EpochStats, EvalStats, Step, evaluate, train_epoch
from vitbench.train.inputs import check_inputs
from vitbench.train.metrics import most_confused
from vitbench.train.recipe import (
    build_ema,
    build_mixup,
    build_optimizer,
    build_scheduler,
)
from vitbench.train.resize import epoch_img_size, resize_model
from vitbench.train.task import Classification, task_for
from vitbench.train.transfer import freeze_backbone
from vitbench.zoo import ModelSpec, create_model, not_applied
from vitbench.zoo.reduction import check_reductions, reduction_fields, tokens_per_layer

EpochHook = Callable[[dict[str, Any]], None]
#: called once on rank 0 with the run id, when the run is claimed and about to train
StartHook = Callable[[str], None]
#: the claim kind under which a run trains
RUN_CLAIM = "train_run"


@dataclass
class TrainResult:
    run_id: str
    config: TrainConfig
    record: dict[str, Any]  # the train_runs row (without environment columns)
    epochs: list[dict[str, Any]]  # the train_epochs rows
    confusion: np.ndarray  # (classes, classes) on the test split
    classes: list[str]
    model: nn.Module  # trained, in eval mode, unwrapped from DDP
    device: str  # where it was trained (this process's device)
    run_dir: Path | None  # where checkpoints and plots are, when a store was given
    points: list[dict[str, Any]] = field(default_factory=list)  # the token_reduction rows

    @property
    def test_acc(self) -> float:
        return float(self.record["test_acc"])


def run_dir(artifacts: str | Path, run_id: str) -> Path:
    """Where a run's checkpoints and plots go under a store's artifacts directory."""
    return Path(artifacts) / "runs" / run_id


def state_path(resume: str | Path, artifacts: Path | None) -> Path:
    """The state to resume: a run id under ``<artifacts>/runs``, a run directory or its file."""
    path = Path(resume)
    if not path.exists() and artifacts is not None:
        path = run_dir(artifacts, str(resume))
    if not path.exists():
        where = f"a run in {artifacts / 'runs'}" if artifacts is not None else "a run directory"
        raise VitbenchError(f"nothing to resume at '{resume}' (neither a path nor {where})")
    return path / ckpt.STATE_FILE if path.is_dir() else path


def resumable(resume: str | Path, artifacts: Path | None) -> Path:
    """The state file ``resume`` names, checked (its header) to be a training state."""
    path = state_path(resume, artifacts)
    ckpt.check_state(path)
    return path


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _teacher(
    cfg: TrainConfig, data: DataBundle, model: nn.Module, env: distributed.DistEnv
) -> nn.Module | None:
    """The frozen teacher, or None; a student with a distillation token is switched to give
    both heads' logits while it trains."""
    if cfg.teacher is None:
        return None
    teacher = build_teacher(cfg, data.img_size, data.in_chans, data.num_classes, env.device)
    if has_dist_head(model):
        model.distilled_training = True  # vitbench's and timm's distilled ViTs read this flag
    return teacher


class _Loaders(NamedTuple):
    train: DataLoader  # this process's shard, reshuffled by ``sampler`` every epoch
    sampler: DistributedSampler
    val: DataLoader  # every image once over all processes
    test: DataLoader


def _per_rank_batch(batch_size: int, env: distributed.DistEnv, mixing: bool) -> int:
    """Each process's share of ``batch_size``, checked to split evenly (and to pair, mixing)."""
    if batch_size % env.world:
        raise VitbenchError(
            f"batch size {batch_size} does not split evenly over {env.world} processes"
        )
    per_rank = batch_size // env.world
    if mixing and per_rank % 2:
        raise VitbenchError(f"mixup/cutmix needs an even batch per process, not {per_rank}")
    return per_rank


def _loaders(data: DataBundle, cfg: TrainConfig, env: distributed.DistEnv) -> _Loaders:
    """This process's loaders; mixing drops a last partial batch (timm's mixup needs pairs)."""
    mixing = cfg.mixup > 0 or cfg.cutmix > 0
    per_rank = _per_rank_batch(cfg.batch_size, env, mixing)
    # DistributedSampler orders the images the same way for any world size: batch k of one
    # process is the union of batch k of every process when per-rank batches are global / world
    sampler = DistributedSampler(
        data.train, num_replicas=env.world, rank=env.rank, shuffle=True, seed=cfg.seed
    )
    pin = env.device.type == "cuda"
    common = dict(num_workers=cfg.workers, pin_memory=pin, persistent_workers=cfg.workers > 0)
    train = DataLoader(data.train, batch_size=per_rank, sampler=sampler, drop_last=mixing, **common)
    if len(train) == 0:
        raise VitbenchError(
            f"{len(data.train)} training images make no batch of {per_rank} per process"
        )

    def eval_loader(ds: Dataset) -> DataLoader:
        shard = distributed.ShardSampler(len(ds), env)
        return DataLoader(ds, batch_size=max(per_rank, 256), sampler=shard, **common)

    return _Loaders(train, sampler, eval_loader(data.val), eval_loader(data.test))


def _data_parallel(model: nn.Module, env: distributed.DistEnv) -> nn.Module:
    """``model`` wrapped in DDP when the run is distributed, else itself."""
    if not env.distributed:
        return model
    ids = [env.device.index] if env.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _macs(spec: ModelSpec, model: nn.Module | None = None) -> int | None:
    """MACs per image of ``spec``'s model counted on the meta device (or of ``model``, on its
    own); None (with a warning) if they cannot be."""
    from vitbench.measure.model_cost import count_model

    device = next(model.parameters()).device if model is not None else "meta"
    try:
        return count_model(spec, batch_size=1, model=model, device=device).macs
    except Exception as exc:  # an optional column must not fail a finished run
        warnings.warn(f"MACs of {spec.name} not counted: {exc}", stacklevel=2)
        return None


def _point_record(cfg: TrainConfig, spec: ModelSpec, point: int, main: bool) -> dict[str, Any]:
    """What a ``token_reduction`` row says of its point: the reduction, and on rank 0 its MACs
    per image and tokens per block, counted on the meta device."""
    rec: dict[str, Any] = {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "point": point,
        **reduction_fields(spec.reduction),
        "train_tome": cfg.train_tome,
        "train_prune": cfg.train_prune,
    }
    if main:
        rec["tokens_per_layer"] = tokens_per_layer(
            create_model(spec, device="meta"), spec.reduction
        )
        rec["macs"] = _macs(spec)
    return rec


def _timed_test(model: nn.Module, loader: DataLoader, run: _Run) -> tuple[EvalStats, float]:
    """The test split evaluated, and the seconds of that pass (after one untimed batch, which
    pays the first call's costs)."""
    env = run.env
    first = next(iter(loader), None)
    if first is not None:
        with torch.no_grad(), autocast(env.device.type, run.cfg.precision):
            model(first[0].to(env.device))
    start = time.perf_counter()
    test = evaluate(model, loader, run.data.num_classes, env, run.cfg.precision)
    return test, time.perf_counter() - start


def _step(
    cfg: TrainConfig,
    model: nn.Module,
    net: nn.Module,
    data: DataBundle,
    steps: int,
    teacher: nn.Module | None,
    train_only: list[nn.Module] | None,
) -> Step:
    """What trains ``net`` (``model`` or its DDP wrapper) for ``steps`` updates an epoch: the
    parameters that require gradients (with ``freeze``, those of ``train_only``, the head)."""
    optimizer = build_optimizer(model, cfg)
    loss = task_for(cfg).loss(cfg)
    distill = None
    if teacher is not None:
        kind, weight = str(cfg.distillation), cfg.teacher_weight()
        distill = DistillationLoss(loss, teacher, kind, weight, cfg.distill_tau)
    return Step(
        net,
        optimizer,
        build_scheduler(optimizer, cfg, steps),
        loss,
        build_mixup(cfg, data.num_classes),
        torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None,
        cfg.clip_grad,
        cfg.precision,
        distill=distill,
        ema=build_ema(model, cfg),
        train_only=train_only,
    )


def _epoch_record(
    cfg: TrainConfig,
    epoch: int,
    tr: EpochStats,
    va: EvalStats,
    ema: EvalStats | None,
    img_size: int,
) -> dict[str, Any]:
    """A ``train_epochs`` row (``img_size``: the side of the epoch's images); with weights EMA,
    the average's validation loss and accuracy."""
    averaged = {"ema_val_loss": ema.loss, "ema_val_acc": ema.acc} if ema is not None else {}
    return {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "epoch": epoch,
        "epochs": cfg.epochs,
        "img_size": img_size,
        "train_loss": tr.loss,
        "train_acc": tr.acc,
        "val_loss": va.loss,
        "val_acc": va.acc,
        "lr": tr.lr,
        "images_per_s": tr.images_per_s,
        "epoch_s": tr.seconds,
        "train_images": tr.images,
        **averaged,
        **task_for(cfg).epoch_fields(va),
    }


def _run_record(run: _Run, macs: int | None, test: EvalStats) -> dict[str, Any]:
    """The ``train_runs`` row (without the run's files and the environment)."""
    cfg, data, history = run.cfg, run.data, run.progress.history
    scored = [r for r in history if not math.isnan(r["val_acc"])]  # none without a val split
    best = max(scored, key=lambda r: r["val_acc"]) if scored else {"val_acc": None, "epoch": None}
    return {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "img_size": data.img_size,
        "in_chans": data.in_chans,
        "num_classes": data.num_classes,
        "model_kwargs": dict(run.spec.kwargs),
        "not_applied": ", ".join(not_applied(run.spec)) or None,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "label_smoothing": cfg.label_smoothing,
        "mixup": cfg.mixup,
        "cutmix": cfg.cutmix,
        "precision": cfg.precision,
        "seed": cfg.seed,
        "world_size": run.env.world,
        "params": sum(p.numel() for p in run.model.parameters()),
        "macs": macs,
        "gmacs": macs / 1e9 if macs is not None else None,
        "train_images": len(data.train),
        "val_images": len(data.val),
        "test_images": test.images,
        "best_val_acc": best["val_acc"],
        "best_epoch": best["epoch"],
        "final_val_acc": history[-1]["val_acc"] if history else None,
        "test_loss": test.loss,
        "test_acc": test.acc,
        "train_s": run.progress.train_s,
        "images_per_s": history[-1]["images_per_s"] if history else None,
        "norm_mean": list(data.mean),
        "norm_std": list(data.std),
        "classes": data.classes,
        "confusion": test.confusion.tolist(),
        "most_confused": most_confused(test.confusion, data.classes),
        "config_hash": cfg.fingerprint(),
        "config": cfg.to_dict(),
    }


def _method_record(
    run: _Run, test: EvalStats, ema: EvalStats | None, teacher: EvalStats | None
) -> dict[str, Any]:
    """The ``train_runs`` fields of the methods a run used: where its weights started and what
    of them trained, distillation (each head's test accuracy, the teacher's), weights EMA (the
    average's test figures), augmentation and progressive resizing."""
    cfg = run.cfg
    return {
        "start": cfg.start(),
        "new_head": run.new_head,
        "freeze": cfg.freeze,
        "trainable_params": sum(p.numel() for p in run.model.parameters() if p.requires_grad),
        "layer_decay": cfg.layer_decay,
        "distillation": cfg.distillation,
        "teacher": cfg.teacher,
        "distill_weight": cfg.teacher_weight() if cfg.distillation else None,
        "teacher_test_acc": teacher.acc if teacher is not None else None,
        "test_acc_cls": test.acc_cls,
        "test_acc_dist": test.acc_dist,
        "ema": cfg.ema,
        "ema_test_loss": ema.loss if ema is not None else None,
        "ema_test_acc": ema.acc if ema is not None else None,
        "randaugment": cfg.randaugment,
        "random_erasing": cfg.random_erasing,
        "img_size_schedule": cfg.img_size_schedule,
    }


@dataclass
class _Run:
    """One run's pieces on this process, and its phases: build, resume, train epochs, finish.

    Every process holds one; only rank 0's ``recorder`` stores and only rank 0 has hooks.
    """

    cfg: TrainConfig
    env: distributed.DistEnv
    run_id: str
    rdir: Path | None  # checkpoints and plots; None without a store
    recorder: Recorder
    data: DataBundle
    spec: ModelSpec
    model: nn.Module  # unwrapped; step.model wraps it in DDP when distributed
    step: Step
    loaders: _Loaders
    teacher: nn.Module | None  # frozen, with distillation
    new_head: bool  # the weights started from were made for other classes
    on_batch: BatchHook | None
    on_epoch: EpochHook | None
    progress: ckpt.Progress = field(default_factory=ckpt.Progress)

    @classmethod
    def build(
        cls,
        cfg: TrainConfig,
        env: distributed.DistEnv,
        store: Store | None,
        run_id: str,
        hooks: tuple[BatchHook | None, EpochHook | None],
    ) -> _Run:
        """Data, model, optimizer and loaders; every process starts from the same weights."""
        if cfg.precision == "fp16" and env.device.type != "cuda":
            raise VitbenchError("fp16 training needs CUDA; use bf16 on the CPU")
        rdir = run_dir(store.artifacts, run_id) if store is not None else None
        writer = store if env.is_main else None
        recorder = Recorder(writer, environment(env.device) if writer is not None else {}, run_id)
        _seed_everything(cfg.seed)
        task = task_for(cfg)
        data = task.load(cfg)
        spec, model, new_head = task.build(cfg, data, env.device)
        check_reductions([dataclasses.replace(spec, reduction=p) for p in cfg.reduction_points()])
        teacher = _teacher(cfg, data, model, env)
        # a linear probe freezes all but the head, before DDP takes note of what trains
        train_only = freeze_backbone(model, cfg.model) if cfg.freeze else None
        # one random stream per process from here on (dropout, mixup, augmentation); identical
        # weights above
        _seed_everything(cfg.seed + env.rank)
        net = _data_parallel(model, env)
        loaders = _loaders(data, cfg, env)
        step = _step(cfg, model, net, data, len(loaders.train), teacher, train_only)
        parts = (data, spec, model, step, loaders, teacher, new_head)
        return cls(cfg, env, run_id, rdir, recorder, *parts, *hooks)

    def resume(self, state: ckpt.TrainState) -> None:
        """Continue from ``state``: weights, optimizer, scheduler, scaler, generators, progress."""
        if len(state.rng) != self.env.world:
            raise VitbenchError(
                f"the run was saved by {len(state.rng)} process(es); "
                f"resume it with as many, not {self.env.world}"
            )
        step = self.step
        self.resize(state.progress.epoch - 1)  # the size the state was written at
        self.model.load_state_dict(state.model)
        step.optimizer.load_state_dict(state.optimizer)
        step.scheduler.load_state_dict(state.scheduler)
        if step.scaler is not None and state.scaler:
            step.scaler.load_state_dict(state.scaler)
        if step.ema is not None:
            step.ema.module.load_state_dict(state.ema)
        ckpt.set_rng_state(state.rng[self.env.rank])
        self.progress = state.progress
        self.recorder.write("train_epochs", self.progress.history)  # rows a killed run missed

    def train_epochs(self) -> None:
        """Train the epochs left; after each, checkpoint, then store its row."""
        cfg, env, done = self.cfg, self.env, self.progress
        for epoch in range(done.epoch, cfg.epochs):
            self.resize(epoch)
            self.loaders.sampler.set_epoch(epoch)
            tr, done.updates = train_epoch(
                self.step, self.loaders.train, env, done.updates, self.on_batch
            )
            va = self.evaluate(self.model, self.loaders.val)
            averaged = self.step.ema
            ema = self.evaluate(averaged.module, self.loaders.val) if averaged is not None else None
            done.train_s += tr.seconds
            done.epoch = epoch + 1
            rec = _epoch_record(cfg, epoch + 1, tr, va, ema, self.data.img_size)
            done.history.append(rec)
            self.checkpoint()
            self.recorder.write("train_epochs", [rec])
            if self.on_epoch is not None:
                self.on_epoch(rec)

    def resize(self, epoch: int) -> None:
        """Model, its average, optimizer moments, data and loaders at the image size of ``epoch``
        (0-based) in the schedule; nothing to do without one or at the current size."""
        size = epoch_img_size(self.cfg, epoch)
        if self.cfg.img_size_schedule is None or size == self.data.img_size:
            return
        resize_model(self.model, size, self.step.optimizer)
        if self.step.ema is not None:
            resize_model(self.step.ema.module, size)
        self.step.model = _data_parallel(self.model, self.env)  # DDP knows the old shapes
        self.spec = dataclasses.replace(self.spec, img_size=size)
        self.data = self.task.load(self.cfg, epoch)
        self.loaders = _loaders(self.data, self.cfg, self.env)

    @property
    def task(self) -> Classification:
        """What the run predicts (:mod:`vitbench.train.task`)."""
        return task_for(self.cfg)

    def evaluate(self, model: nn.Module, loader: DataLoader) -> EvalStats:
        """``model`` scored on every image of ``loader``'s split, over all processes."""
        return self.task.evaluate(
            model, loader, self.data.num_classes, self.env, self.cfg.precision
        )

    def checkpoint(self) -> None:
        """Rewrite ``last.safetensors`` (rank 0, with a store); every process gives its RNG."""
        rng = distributed.gather(ckpt.rng_state(), self.env)  # every process takes part
        if self.env.is_main and self.rdir is not None:
            ckpt.save_state(self.state(rng), self.rdir / ckpt.STATE_FILE)

    def state(self, rng: list[dict[str, Any]]) -> ckpt.TrainState:
        """Everything resuming needs, with every process's generators ``rng``."""
        step = self.step
        return ckpt.TrainState(
            run_id=self.run_id,
            config=self.cfg.to_dict(),
            progress=self.progress,
            model=self.model.state_dict(),
            optimizer=step.optimizer.state_dict(),
            scheduler=step.scheduler.state_dict(),
            scaler=step.scaler.state_dict() if step.scaler is not None else {},
            rng=rng,
            ema=step.ema.module.state_dict() if step.ema is not None else {},
        )

    def finish(self) -> TrainResult:
        """Test the trained model, write its files, store the run's row and return the result."""
        env, data, ema = self.env, self.data, self.step.ema
        test = self.evaluate(self.model, self.loaders.test)
        ema_test = self.evaluate(ema.module, self.loaders.test) if ema is not None else None
        teacher = self.teacher
        teacher_test = self.evaluate(teacher, self.loaders.test) if teacher is not None else None
        self.model.eval()
        points = self.recorder.write("token_reduction", self.test_points())
        counted = self.model if self.task.counts_built_model else None
        record = _run_record(self, _macs(self.spec, counted) if env.is_main else None, test)
        record.update(_method_record(self, test, ema_test, teacher_test))
        record.update(self.task.run_fields(self.cfg, test))
        if env.is_main and self.rdir is not None:
            self.write_files(self.rdir, test)
            record["run_dir"] = str(self.rdir)
        self.recorder.write("train_runs", [record])
        return TrainResult(
            run_id=self.run_id,
            config=self.cfg,
            record=record,
            epochs=self.progress.history,
            confusion=test.confusion,
            classes=data.classes,
            model=self.model,
            device=str(env.device),
            run_dir=self.rdir,
            points=points,
        )

    def test_points(self) -> list[dict[str, Any]]:
        """The trained weights tested at each token reduction point of the config, the plain
        model first: one ``token_reduction`` row each (none when the config names no point)."""
        points = self.cfg.reduction_points()
        if points == [None]:
            return []
        weights = self.model.state_dict()
        rows = []
        for i, reduction in enumerate(points):
            spec = dataclasses.replace(self.spec, reduction=reduction)
            model = create_model(spec, device=self.env.device)
            model.load_state_dict(weights)
            test, seconds = _timed_test(model, self.loaders.test, self)
            rows.append(
                {
                    **_point_record(self.cfg, spec, i, self.env.is_main),
                    "test_loss": test.loss,
                    "test_acc": test.acc,
                    "test_images": test.images,
                    "batch_size": self.loaders.test.batch_size,  # per process
                    "world_size": self.env.world,
                    "test_s": seconds,
                    "images_per_s": test.images / seconds,
                }
            )
        return rows

    def write_files(self, rdir: Path, test: EvalStats) -> None:
        """The final weights, learning curves (when an epoch ran) and test confusion matrix in
        ``rdir``."""
        cfg = self.cfg
        ckpt.save_weights(self.model, rdir / ckpt.WEIGHTS_FILE, cfg.to_dict(), self.spec)
        if self.step.ema is not None:
            ckpt.save_weights(self.step.ema.module, rdir / ckpt.EMA_FILE, cfg.to_dict(), self.spec)
        title = f"{cfg.model} on {cfg.dataset}"
        if self.progress.history:
            plots.curves(self.progress.history, rdir / "curves.png", title)
        plots.confusion(test.confusion, self.data.classes, rdir / "confusion.png", title)
        self.task.write_files(self.model, self.data, rdir, title, self.recorder)


def _claim_run(store: Store, run_id: str, resuming: bool) -> Claim:
    """Hold ``run_id`` in the store for this process; a finished or running run is refused."""
    finished = VitbenchError(f"run {run_id} has finished: its results are in {store.label}")
    if resuming and store.rows("train_runs", run_id=run_id):
        raise finished
    got = claim(store, RUN_CLAIM, run_id)
    if isinstance(got, Claim):
        return got
    if got.status == DONE:
        raise finished
    raise VitbenchError(f"run {run_id} is already running in {got.describe()}")


def _hold(
    store: Store | None, run_id: str, resuming: bool, env: distributed.DistEnv
) -> contextlib.AbstractContextManager:
    """Rank 0 claims the run (nothing to hold without a store); every process stops if refused."""
    held: contextlib.AbstractContextManager = contextlib.nullcontext()
    refusal = None
    if store is not None and env.is_main:
        try:
            held = _claim_run(store, run_id, resuming)
        except VitbenchError as exc:
            refusal = str(exc)
    refusal = distributed.broadcast(refusal, env)
    if refusal is not None:
        raise VitbenchError(refusal)
    return held


def train(
    config: TrainConfig | None = None,
    *,
    store: Store | None = None,
    resume: str | Path | None = None,
    run_id: str | None = None,
    on_batch: BatchHook | None = None,
    on_epoch: EpochHook | None = None,
    on_start: StartHook | None = None,
) -> TrainResult:
    """Train ``config`` (or resume a run) into ``store`` and return the tested result.

    ``store=None`` writes nothing (no rows, checkpoints or plots). ``resume`` is a run id under
    ``store.artifacts/runs``, a run directory or its ``last.safetensors``: the run continues
    with the config saved there, under the same run id, and ends as the uninterrupted run
    would have. ``run_id`` names a new run (default: a fresh id). A run that has finished, or
    that a live process is training, is refused. Hooks run on rank 0; ``on_start`` hears the
    run id before the data is loaded, so an interrupted run can be resumed by it. The packages
    of ``imports`` are imported before the model's name is resolved.
    """
    state = None
    if resume is not None:
        state = ckpt.load_state(state_path(resume, store.artifacts if store else None))
        config, run_id = TrainConfig.from_dict(state.config), state.run_id
    cfg = config or TrainConfig()
    cfg.validate()
    cfg = cfg.resolved()
    check_inputs(cfg)
    env = distributed.setup(cfg.device)
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        run_id = distributed.broadcast(run_id or new_run_id(), env)
        with _hold(store, run_id, state is not None, env):
            if env.is_main and on_start is not None:
                on_start(run_id)
            return _train(cfg, env, store, run_id, state, on_batch, on_epoch)
    finally:
        torch.set_num_threads(threads)
        distributed.teardown(env)


def _train(
    cfg: TrainConfig,
    env: distributed.DistEnv,
    store: Store | None,
    run_id: str,
    state: ckpt.TrainState | None,
    on_batch: BatchHook | None,
    on_epoch: EpochHook | None,
) -> TrainResult:
    """The run's phases on this process: build, resume from ``state`` if any, train, finish."""
    hooks = (on_batch, on_epoch) if env.is_main else (None, None)
    run = _Run.build(cfg, env, store, run_id, hooks)
    if state is not None:
        run.resume(state)
    run.train_epochs()
    return run.finish()
