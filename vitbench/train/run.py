"""``train(config)``: one training run from data to stored results, resumable, data-parallel.

A run writes, when given a results store ``out``:

- ``<out>/train_epochs.csv``: one row per epoch (train/val loss and accuracy, lr, images/s);
- ``<out>/train_runs.csv``: one row at the end (test accuracy as a fraction, confusion matrix,
  most confused pairs, params, MACs, normalisation statistics, the config);
- ``<out>/runs/<run_id>/``: ``last.safetensors`` (full state, rewritten every epoch, for
  ``resume``), ``model.safetensors`` (final weights with their config), ``curves.png``,
  ``confusion.png``.

Under ``torchrun`` every process trains on its shard; only rank 0 writes.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from vitbench import store
from vitbench.errors import VitbenchError
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


def run_dir(out: str | Path, run_id: str) -> Path:
    return Path(out) / "runs" / run_id


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


def _write_missing_epochs(
    rows: list[dict[str, Any]], out: Path, run_id: str, env_cols: dict[str, Any]
) -> None:
    """Append the epoch rows of this run that the store does not hold yet (after a resume)."""
    have = store.read_table(out, "train_epochs")
    done: set[int] = set()
    if not have.empty and "run_id" in have:
        done = set(have.loc[have.run_id == run_id, "epoch"].astype(int))
    todo = [r for r in rows if r["epoch"] not in done]
    store.append_records(store.stamp_records(todo, run_id, env_cols), out, "train_epochs")


def _finished(out: Path, run_id: str) -> bool:
    runs = store.read_table(out, "train_runs")
    return not runs.empty and bool((runs.run_id == run_id).any())


def _enable_grad_checkpointing(model: nn.Module, name: str) -> None:
    if not hasattr(model, "set_grad_checkpointing"):
        raise VitbenchError(f"{name} does not support gradient checkpointing")
    model.set_grad_checkpointing(True)


def train(
    config: TrainConfig | None = None,
    *,
    out: str | Path | None = store.DEFAULT_STORE,
    resume: str | Path | None = None,
    on_batch: BatchHook | None = None,
    on_epoch: EpochHook | None = None,
) -> TrainResult:
    """Train ``config`` (or resume the run at ``resume``) and return the tested result.

    ``out=None`` writes nothing (no store rows, checkpoints or plots). ``resume`` is a run
    directory or its ``last.safetensors``: the run continues with the config stored there,
    under the same run id, and ends as the uninterrupted run would have. Hooks run on rank 0.
    """
    state = None
    if resume is not None:
        path = Path(resume)
        state = ckpt.load_state(path / ckpt.STATE_FILE if path.is_dir() else path)
        config = TrainConfig.from_dict(state["config"])
        if out is not None and _finished(Path(out), state["run_id"]):
            raise VitbenchError(f"run {state['run_id']} has finished: its results are in {out}")
    cfg = config or TrainConfig()
    cfg.validate()
    env = distributed.setup(cfg.device)
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(cfg, env, out, state, on_batch, on_epoch)
    finally:
        torch.set_num_threads(threads)
        distributed.teardown(env)


def _train(
    cfg: TrainConfig,
    env: distributed.DistEnv,
    out: str | Path | None,
    state: dict[str, Any] | None,
    on_batch: BatchHook | None,
    on_epoch: EpochHook | None,
) -> TrainResult:
    main = env.is_main
    if cfg.precision == "fp16" and env.device.type != "cuda":
        raise VitbenchError("fp16 training needs CUDA; use bf16 on the CPU")
    run_id = state["run_id"] if state else distributed.broadcast(store.new_run_id(), env)
    rdir = run_dir(out, run_id) if out is not None else None
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
    scheduler = build_scheduler(optimizer, cfg, len(train_dl))
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    step = Step(
        net,
        optimizer,
        scheduler,
        build_loss(cfg),
        build_mixup(cfg, data.num_classes),
        scaler,
        cfg.clip_grad,
        cfg.precision,
    )
    start_epoch, updates, history, train_s = 0, 0, [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        rngs = state["rng"]
        if len(rngs) != env.world:
            raise VitbenchError(
                f"the run was saved by {len(rngs)} process(es); resume it with as many, "
                f"not {env.world}"
            )
        ckpt.set_rng_state(rngs[env.rank])
        start_epoch, updates = state["epoch"], state["updates"]
        history, train_s = state["history"], state["train_s"]
    env_cols = store.environment(env.device) if main else {}
    if main and rdir is not None and history:
        _write_missing_epochs(history, Path(out), run_id, env_cols)

    hook = on_batch if main else None
    for epoch in range(start_epoch, cfg.epochs):
        sampler.set_epoch(epoch)
        tr, updates = train_epoch(step, train_dl, env, updates, hook)
        va = evaluate(model, val_dl, data.num_classes, env, cfg.precision)
        train_s += tr.seconds
        rec = _epoch_record(cfg, epoch + 1, tr, va)
        history.append(rec)
        rng = distributed.gather(ckpt.rng_state(), env)  # every process takes part
        if main and rdir is not None:
            ckpt.save_state(
                {
                    "run_id": run_id,
                    "config": cfg.to_dict(),
                    "epoch": epoch + 1,
                    "updates": updates,
                    "train_s": train_s,
                    "history": history,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler is not None else {},
                    "rng": rng,
                },
                rdir / ckpt.STATE_FILE,
            )
            store.append_records(store.stamp_records([rec], run_id, env_cols), out, "train_epochs")
        if main and on_epoch is not None:
            on_epoch(rec)

    test = evaluate(model, test_dl, data.num_classes, env, cfg.precision)
    model.eval()
    macs = _macs(spec) if main else None
    scored = [r for r in history if not math.isnan(r["val_acc"])]  # none without a val split
    best = max(scored, key=lambda r: r["val_acc"]) if scored else {"val_acc": None, "epoch": None}
    record = {
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
        "train_s": train_s,
        "images_per_s": history[-1]["images_per_s"],
        "norm_mean": list(data.mean),
        "norm_std": list(data.std),
        "classes": data.classes,
        "confusion": test.confusion.tolist(),
        "most_confused": most_confused(test.confusion, data.classes),
        "config_hash": cfg.fingerprint(),
        "config": cfg.to_dict(),
    }
    if main and rdir is not None:
        ckpt.save_weights(model, rdir / ckpt.WEIGHTS_FILE, cfg.to_dict(), spec)
        title = f"{cfg.model} on {cfg.dataset}"
        plots.curves(history, rdir / "curves.png", title)
        plots.confusion(test.confusion, data.classes, rdir / "confusion.png", title)
        record["run_dir"] = str(rdir)
        store.append_records(store.stamp_records([record], run_id, env_cols), out, "train_runs")
    return TrainResult(
        run_id, cfg, record, history, test.confusion, data.classes, model, str(env.device), rdir
    )
