"""``train(config)``: one training run from data to stored results, resumable, data-parallel.

A run given an open results store writes, as it goes:

- to ``train_epochs``: one row per epoch as soon as the epoch ends (train/val loss and accuracy,
  lr, images/s), each in its own transaction;
- to ``train_runs``: one row at the end (test accuracy as a fraction, confusion matrix, most
  confused pairs, params, MACs, normalisation statistics, the config);
- under ``<store.artifacts>/runs/<run_id>/``: ``last.safetensors`` (full state, rewritten every
  epoch, for ``resume``), ``model.safetensors`` (final weights with their config),
  ``curves.png``, ``confusion.png``.

The run is claimed in the store while it trains, so it is resumed by one process at a time.
Under ``torchrun`` every process trains on its shard; only rank 0 touches the store.
"""

from __future__ import annotations

import contextlib
import math
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from vitbench.errors import VitbenchError
from vitbench.store import Claim, Recorder, Store, claim, environment, new_run_id
from vitbench.store.claims import DONE
from vitbench.train import checkpoint as ckpt
from vitbench.train import distributed, plots
from vitbench.train.data import DataBundle, load_data
from vitbench.train.engine import BatchHook, EpochStats, EvalStats, Step, evaluate, train_epoch
from vitbench.train.metrics import most_confused
from vitbench.train.recipe import (
    TrainConfig,
    build_loss,
    build_mixup,
    build_optimizer,
    build_scheduler,
)
from vitbench.zoo import ModelSpec, create_model

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


def _loaders(
    data: DataBundle, cfg: TrainConfig, env: distributed.DistEnv
) -> tuple[DataLoader, DistributedSampler, DataLoader, DataLoader]:
    if cfg.batch_size % env.world:
        raise VitbenchError(
            f"batch size {cfg.batch_size} does not split evenly over {env.world} processes"
        )
    per_rank = cfg.batch_size // env.world
    mixing = cfg.mixup > 0 or cfg.cutmix > 0
    if mixing and per_rank % 2:
        raise VitbenchError(f"mixup/cutmix needs an even batch per process, not {per_rank}")
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

    return train, sampler, eval_loader(data.val), eval_loader(data.test)


def _macs(spec: ModelSpec) -> int | None:
    """MACs per image, counted on the meta device; None (with a warning) if it cannot be."""
    from vitbench.measure.model_cost import count_model

    try:
        return count_model(spec, batch_size=1).macs
    except Exception as exc:  # noqa: BLE001 - an optional column must not fail a finished run
        warnings.warn(f"MACs of {spec.name} not counted: {exc}", stacklevel=2)
        return None


@dataclass
class _Progress:
    """Where a run stands: epochs done, optimizer updates, the epoch rows, seconds trained."""

    epoch: int = 0
    updates: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_s: float = 0.0


def _epoch_record(cfg: TrainConfig, epoch: int, tr: EpochStats, va: EvalStats) -> dict[str, Any]:
    return {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "epoch": epoch,
        "epochs": cfg.epochs,
        "train_loss": tr.loss,
        "train_acc": tr.acc,
        "val_loss": va.loss,
        "val_acc": va.acc,
        "lr": tr.lr,
        "images_per_s": tr.images_per_s,
        "epoch_s": tr.seconds,
        "train_images": tr.images,
    }


def _run_record(
    cfg: TrainConfig,
    data: DataBundle,
    spec: ModelSpec,
    env: distributed.DistEnv,
    params: int,
    macs: int | None,
    progress: _Progress,
    test: EvalStats,
) -> dict[str, Any]:
    """The ``train_runs`` row (without the run's files and the environment)."""
    history = progress.history
    scored = [r for r in history if not math.isnan(r["val_acc"])]  # none without a val split
    best = max(scored, key=lambda r: r["val_acc"]) if scored else {"val_acc": None, "epoch": None}
    return {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "img_size": data.img_size,
        "in_chans": data.in_chans,
        "num_classes": data.num_classes,
        "model_kwargs": dict(spec.kwargs),
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "weight_decay": cfg.weight_decay,
        "label_smoothing": cfg.label_smoothing,
        "mixup": cfg.mixup,
        "cutmix": cfg.cutmix,
        "precision": cfg.precision,
        "seed": cfg.seed,
        "world_size": env.world,
        "params": params,
        "macs": macs,
        "gmacs": macs / 1e9 if macs is not None else None,
        "train_images": len(data.train),
        "val_images": len(data.val),
        "test_images": test.images,
        "best_val_acc": best["val_acc"],
        "best_epoch": best["epoch"],
        "final_val_acc": history[-1]["val_acc"],
        "test_loss": test.loss,
        "test_acc": test.acc,
        "train_s": progress.train_s,
        "images_per_s": history[-1]["images_per_s"],
        "norm_mean": list(data.mean),
        "norm_std": list(data.std),
        "classes": data.classes,
        "confusion": test.confusion.tolist(),
        "most_confused": most_confused(test.confusion, data.classes),
        "config_hash": cfg.fingerprint(),
        "config": cfg.to_dict(),
    }


def _save_state(
    path: Path,
    run_id: str,
    cfg: TrainConfig,
    progress: _Progress,
    model: nn.Module,
    step: Step,
    rng: list[dict[str, Any]],
) -> None:
    """Everything ``resume`` needs to continue the run bit for bit."""
    ckpt.save_state(
        {
            "run_id": run_id,
            "config": cfg.to_dict(),
            "epoch": progress.epoch,
            "updates": progress.updates,
            "train_s": progress.train_s,
            "history": progress.history,
            "model": model.state_dict(),
            "optimizer": step.optimizer.state_dict(),
            "scheduler": step.scheduler.state_dict(),
            "scaler": step.scaler.state_dict() if step.scaler is not None else {},
            "rng": rng,
        },
        path,
    )


def _restore(
    state: dict[str, Any], model: nn.Module, step: Step, env: distributed.DistEnv
) -> _Progress:
    """Load a saved state into the model and optimizer; return where the run stood."""
    model.load_state_dict(state["model"])
    step.optimizer.load_state_dict(state["optimizer"])
    step.scheduler.load_state_dict(state["scheduler"])
    if step.scaler is not None and state.get("scaler"):
        step.scaler.load_state_dict(state["scaler"])
    rngs = state["rng"]
    if len(rngs) != env.world:
        raise VitbenchError(
            f"the run was saved by {len(rngs)} process(es); resume it with as many, not {env.world}"
        )
    ckpt.set_rng_state(rngs[env.rank])
    return _Progress(state["epoch"], state["updates"], state["history"], state["train_s"])


def _enable_grad_checkpointing(model: nn.Module, name: str) -> None:
    if not hasattr(model, "set_grad_checkpointing"):
        raise VitbenchError(f"{name} does not support gradient checkpointing")
    model.set_grad_checkpointing(True)


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
    run id before the data is loaded, so an interrupted run can be resumed by it.
    """
    state = None
    if resume is not None:
        state = ckpt.load_state(state_path(resume, store.artifacts if store else None))
        config, run_id = TrainConfig.from_dict(state["config"]), state["run_id"]
    cfg = config or TrainConfig()
    cfg.validate()
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
    state: dict[str, Any] | None,
    on_batch: BatchHook | None,
    on_epoch: EpochHook | None,
) -> TrainResult:
    main = env.is_main
    if cfg.precision == "fp16" and env.device.type != "cuda":
        raise VitbenchError("fp16 training needs CUDA; use bf16 on the CPU")
    rdir = run_dir(store.artifacts, run_id) if store is not None else None
    writer = store if main else None
    recorder = Recorder(writer, environment(env.device) if writer is not None else {}, run_id)
    _seed_everything(cfg.seed)
    data = load_data(
        cfg.dataset,
        data_dir=cfg.data_dir,
        img_size=cfg.img_size,
        in_chans=cfg.in_chans,
        seed=cfg.seed,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        subset=cfg.subset,
    )
    spec = cfg.model_spec(data.img_size, data.in_chans, data.num_classes)
    model = create_model(
        spec, device=env.device, pretrained=cfg.pretrained, checkpoint=cfg.checkpoint
    )
    if cfg.grad_checkpointing:
        _enable_grad_checkpointing(model, cfg.model)
    params = sum(p.numel() for p in model.parameters())
    # one random stream per process from here on (dropout, mixup); identical weights above
    torch.manual_seed(cfg.seed + env.rank)
    np.random.seed(cfg.seed + env.rank)
    net: nn.Module = model
    if env.distributed:
        ids = [env.device.index] if env.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=ids)
    train_dl, sampler, val_dl, test_dl = _loaders(data, cfg, env)
    optimizer = build_optimizer(model, cfg)
    step = Step(
        net,
        optimizer,
        build_scheduler(optimizer, cfg, len(train_dl)),
        build_loss(cfg),
        build_mixup(cfg, data.num_classes),
        torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None,
        cfg.clip_grad,
        cfg.precision,
    )
    progress = _Progress()
    if state is not None:
        progress = _restore(state, model, step, env)
        recorder.write("train_epochs", progress.history)  # any a killed process did not store

    hook = on_batch if main else None
    for epoch in range(progress.epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        tr, progress.updates = train_epoch(step, train_dl, env, progress.updates, hook)
        va = evaluate(model, val_dl, data.num_classes, env, cfg.precision)
        progress.train_s += tr.seconds
        progress.epoch = epoch + 1
        rec = _epoch_record(cfg, epoch + 1, tr, va)
        progress.history.append(rec)
        rng = distributed.gather(ckpt.rng_state(), env)  # every process takes part
        if main and rdir is not None:
            _save_state(rdir / ckpt.STATE_FILE, run_id, cfg, progress, model, step, rng)
        recorder.write("train_epochs", [rec])
        if main and on_epoch is not None:
            on_epoch(rec)

    test = evaluate(model, test_dl, data.num_classes, env, cfg.precision)
    model.eval()
    macs = _macs(spec) if main else None
    record = _run_record(cfg, data, spec, env, params, macs, progress, test)
    if main and rdir is not None:
        ckpt.save_weights(model, rdir / ckpt.WEIGHTS_FILE, cfg.to_dict(), spec)
        title = f"{cfg.model} on {cfg.dataset}"
        plots.curves(progress.history, rdir / "curves.png", title)
        plots.confusion(test.confusion, data.classes, rdir / "confusion.png", title)
        record["run_dir"] = str(rdir)
    recorder.write("train_runs", [record])
    return TrainResult(
        run_id,
        cfg,
        record,
        progress.history,
        test.confusion,
        data.classes,
        model,
        str(env.device),
        rdir,
    )
