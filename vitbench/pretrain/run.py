"""``pretrain_mae(config)``: MAE pre-training from data to a checkpoint that fine-tunes.

A run given an open results store writes, as it goes:

- to ``pretrain_epochs``: one row per epoch as soon as it ends (the reconstruction loss on the
  training split, and on the validation split under one fixed masking, lr, images/s), each
  naming the checkpoint the run writes at the end;
- under ``<store.artifacts>/runs/<run_id>/``: ``model.safetensors``, the encoder alone as the
  plain ViT it is (no classification head) with its model spec, so ``vitbench train
  --checkpoint`` fine-tunes it with a new head; ``reconstruction.png`` (masked input,
  reconstruction and original of validation images), also stored in ``figures``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from vitbench.environment import environment, new_run_id
from vitbench.errors import VitbenchError
from vitbench.pretrain import plots
from vitbench.pretrain.config import MAEConfig
from vitbench.pretrain.data import pretrain_data
from vitbench.pretrain.mae import MaskedAutoencoder, masked_count
from vitbench.store import Recorder, Store
from vitbench.train import checkpoint as ckpt
from vitbench.train.config import TrainConfig
from vitbench.train.data import DataBundle
from vitbench.train.recipe import build_optimizer, build_scheduler
from vitbench.train.run import run_dir
from vitbench.zoo import ModelSpec, create_model
from vitbench.zoo.scratch.vit import VisionTransformer

BatchHook = Callable[[int, int], None]  # (batches done, batches per epoch)
EpochHook = Callable[[dict[str, Any]], None]
FIGURE = "reconstruction.png"
#: validation images shown in the reconstruction figure
FIGURE_IMAGES = 8


@dataclass
class PretrainResult:
    run_id: str
    config: MAEConfig
    epochs: list[dict[str, Any]]  # the pretrain_epochs rows
    model: MaskedAutoencoder  # trained, in eval mode
    checkpoint: Path | None  # the encoder's weights, when a store was given


def encoder_spec(cfg: MAEConfig) -> ModelSpec:
    """The encoder's spec (no head), checked to be a vitbench ViT that MAE can mask: image
    size a multiple of the patch size, positions added to the tokens, patches on both sides
    of the mask. ``cfg`` is validated and its model name resolved."""
    spec = cfg.recipe().model_spec(*cfg.input_shape(), 0)
    meta = create_model(spec, device="meta")  # a size that does not fit is a VitbenchError
    if not isinstance(meta, VisionTransformer):
        raise VitbenchError(f"MAE pre-trains vitbench's ViTs (scratch_vit_*), not {cfg.model}")
    if meta.rel_pos is not None:
        raise VitbenchError("MAE needs positions added to the tokens, not pos_embed=rel")
    n = meta.patch_embed.num_patches
    if not 0 < masked_count(n, cfg.mask_ratio) < n:
        raise VitbenchError(f"mask_ratio {cfg.mask_ratio} hides none or all of {n} patches")
    return spec


def check_config(cfg: MAEConfig) -> tuple[MAEConfig, ModelSpec]:
    """``cfg`` validated, its model name resolved, and its encoder's spec: every check a run
    makes before it writes anything."""
    cfg.validate()
    cfg = dataclasses.replace(cfg, model=cfg.recipe().resolved().model)
    return cfg, encoder_spec(cfg)


def _build(cfg: MAEConfig, spec: ModelSpec, device: torch.device) -> MaskedAutoencoder:
    encoder = create_model(spec, device=device)
    mae = MaskedAutoencoder(
        encoder, cfg.mask_ratio, cfg.decoder_dim, cfg.decoder_depth, cfg.decoder_heads, cfg.norm_pix
    )
    return mae.to(device)


@dataclass
class _Loop:
    """One run's pieces: the model, its optimizer and schedule, the loaders."""

    cfg: MAEConfig
    model: MaskedAutoencoder
    device: torch.device
    train: DataLoader
    val: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: Any  # timm's CosineLRScheduler, stepped per update
    updates: int = 0

    def epoch(self, on_batch: BatchHook | None) -> dict[str, float]:
        """One pass over the training split: the mean loss, lr at the end, images and seconds."""
        self.model.train()
        total, images, start = 0.0, 0, time.perf_counter()
        for i, (x, _) in enumerate(self.train):
            x = x.to(self.device)
            loss = self.model(x).loss
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), TrainConfig.clip_grad)
            self.optimizer.step()
            self.updates += 1
            self.scheduler.step_update(self.updates)
            total, images = total + loss.item() * len(x), images + len(x)
            if on_batch is not None:
                on_batch(i + 1, len(self.train))
        seconds = time.perf_counter() - start
        lr = self.optimizer.param_groups[0]["lr"]
        return dict(train_loss=total / images, lr=lr, images=images, seconds=seconds)

    @torch.no_grad()
    def val_loss(self) -> float:
        """The loss on the validation split under one masking fixed by the seed, so epochs
        compare on the same hidden patches."""
        self.model.eval()
        gen = torch.Generator().manual_seed(self.cfg.seed)
        total, images = 0.0, 0
        for x, _ in self.val:
            total += self.model(x.to(self.device), gen).loss.item() * len(x)
            images += len(x)
        return total / max(images, 1)


def _loop(cfg: MAEConfig, spec: ModelSpec, data: DataBundle, device: torch.device) -> _Loop:
    torch.manual_seed(cfg.seed)
    model = _build(cfg, spec, device)
    gen = torch.Generator().manual_seed(cfg.seed)
    train = DataLoader(data.train, batch_size=cfg.batch_size, shuffle=True, generator=gen)
    val = DataLoader(data.val, batch_size=max(cfg.batch_size, 256))
    recipe = cfg.recipe()
    optimizer = build_optimizer(model, recipe)
    return _Loop(
        cfg, model, device, train, val, optimizer, build_scheduler(optimizer, recipe, len(train))
    )


def _epoch_record(
    cfg: MAEConfig, spec: ModelSpec, loop: _Loop, epoch: int, stats: dict[str, float]
) -> dict[str, Any]:
    """A ``pretrain_epochs`` row."""
    n = loop.model.num_patches
    return {
        "model": cfg.model,
        "dataset": cfg.dataset,
        "img_size": spec.img_size,
        "in_chans": spec.in_chans,
        "model_kwargs": dict(spec.kwargs),
        "num_patches": n,
        "masked_patches": masked_count(n, cfg.mask_ratio),
        "mask_ratio": cfg.mask_ratio,
        "norm_pix": cfg.norm_pix,
        "epoch": epoch,
        "epochs": cfg.epochs,
        "train_loss": stats["train_loss"],
        "val_loss": loop.val_loss(),
        "lr": stats["lr"],
        "images_per_s": stats["images"] / stats["seconds"],
        "epoch_s": stats["seconds"],
        "train_images": stats["images"],
        "seed": cfg.seed,
        "config_hash": cfg.fingerprint(),
        "config": cfg.to_dict(),
    }


def _figure(loop: _Loop, data: DataBundle, path: Path, title: str) -> Path:
    """Masked input, reconstruction and original of the first validation images."""
    x = torch.stack([data.val[i][0] for i in range(min(FIGURE_IMAGES, len(data.val)))])
    x = x.to(loop.device)
    loop.model.eval()
    with torch.no_grad():
        out = loop.model(x, torch.Generator().manual_seed(loop.cfg.seed))
        shown = {
            "masked input": loop.model.masked_input(x, out.mask),
            "reconstruction": loop.model.reconstruct(x, out),
            "original": x,
        }
    rgb = {k: plots.to_rgb(v, data.mean, data.std) for k, v in shown.items()}
    return plots.reconstructions(rgb, path, title)


def pretrain_mae(
    config: MAEConfig | None = None,
    *,
    store: Store | None = None,
    run_id: str | None = None,
    on_batch: BatchHook | None = None,
    on_epoch: EpochHook | None = None,
) -> PretrainResult:
    """Pre-train an MAE per ``config`` into ``store`` and return the result; ``store=None``
    writes nothing. Bad options are one :class:`VitbenchError` before anything is written."""
    cfg, spec = check_config(config or MAEConfig())
    from vitbench.device import resolve_device

    device = torch.device(resolve_device(cfg.device))
    threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        env = environment(device) if store is not None else {}
        recorder = Recorder(store, env, run_id or new_run_id())
        return _pretrain(cfg, spec, device, recorder, store, on_batch, on_epoch)
    finally:
        torch.set_num_threads(threads)


def _pretrain(
    cfg: MAEConfig,
    spec: ModelSpec,
    device: torch.device,
    recorder: Recorder,
    store: Store | None,
    on_batch: BatchHook | None,
    on_epoch: EpochHook | None,
) -> PretrainResult:
    """The epochs, each row stored as it ends, then the encoder's weights and the figure."""
    data = pretrain_data(cfg)
    loop = _loop(cfg, spec, data, device)
    rdir = run_dir(store.artifacts, recorder.run_id) if store is not None else None
    weights = rdir / ckpt.WEIGHTS_FILE if rdir is not None else None
    rows = []
    for epoch in range(1, cfg.epochs + 1):
        rec = _epoch_record(cfg, spec, loop, epoch, loop.epoch(on_batch))
        rec["checkpoint"] = str(weights) if weights is not None else None
        rows += recorder.write("pretrain_epochs", [rec])
        if on_epoch is not None:
            on_epoch(rec)
    loop.model.eval()
    if rdir is not None:
        rdir.mkdir(parents=True, exist_ok=True)
        ckpt.save_weights(loop.model.encoder, weights, cfg.to_dict(), spec)
        title = f"MAE {cfg.model} on {cfg.dataset}, {cfg.mask_ratio:.0%} of patches hidden"
        recorder.write_figure(FIGURE, _figure(loop, data, rdir / FIGURE, title))
    return PretrainResult(recorder.run_id, cfg, rows, loop.model, weights)
