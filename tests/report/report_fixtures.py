"""Small stored results in the stores' schemas, written as the commands write them, and
readers for the report's markdown."""

from __future__ import annotations

import math
from pathlib import Path

from vitbench import store


def env(device: str = "Test CPU 2 cores", threads: int = 2, torch: str = "2.14.1") -> dict:
    """``env_*`` columns as :func:`vitbench.environment.environment` writes them."""
    return {
        "env_vitbench": "0.1.0",
        "env_torch": torch,
        "env_timm": "1.0.31",
        "env_python": "3.11.9",
        "env_platform": "Linux-6.1",
        "env_host": "box",
        "env_device_type": "cpu",
        "env_device": device,
        "env_threads": threads,
        "env_cpu_count": 2,
    }


def profile_rows() -> list[dict]:
    """ViT-B/16 and Swin-T at their own size (two batch sizes each) and an image-size sweep."""
    rows = []
    for model, params, macs, tput in (
        ("vit_base_patch16_224", 86_567_656, 17_582_740_224, (10.0, 12.5)),
        ("swin_tiny_patch4_window7_224", 28_288_354, 4_510_000_000, (30.0, 41.0)),
    ):
        for batch, sps in zip((1, 8), tput, strict=True):
            rows.append(
                {
                    "model": model,
                    "img_size": 224,
                    "batch_size": batch,
                    "tokens": 197,
                    "params": params,
                    "macs": macs,
                    "macs_batch": macs * batch,
                    "latency_median_ms": 1000 * batch / sps,
                    "throughput_sps": sps,
                    "achieved_tflops": 2 * macs * sps / 1e12,
                    "peak_tflops": 0.5,
                    "peak_source": "measured float32 matmul on this CPU",
                    "mfu": 2 * macs * sps / 1e12 / 0.5,
                    "memory_peak_bytes": 400 * 2**20 * batch,
                    "status": "ok",
                    "device": "Test CPU 2 cores",
                    "device_type": "cpu",
                    "precision": "fp32",
                    "threads": 2,
                }
            )
    for img in (32, 64, 128):
        tokens = (img // 16) ** 2 + 1
        rows.append(
            {
                "model": "vit_small_patch16_224",
                "img_size": img,
                "batch_size": 1,
                "tokens": tokens,
                "params": 22_000_000,
                "macs": int(4.6e9 * tokens / 197),
                "latency_median_ms": 0.2 * tokens**1.1,
                "throughput_sps": 1000 / (0.2 * tokens**1.1),
                "memory_peak_bytes": 88 * 2**20 + 1000 * tokens * 2**10,
                "memory_peak_over_baseline_bytes": 1000 * tokens * 2**10,
                "status": "ok",
                "precision": "fp32",
            }
        )
    return rows


def fit_rows() -> list[dict]:
    """Fits in `vitbench.measure.scaling.fit_scaling`'s form, of the sweep above."""
    from vitbench.measure.scaling import fit_scaling

    return fit_scaling([r for r in profile_rows() if r["model"] == "vit_small_patch16_224"])


#: what `vitbench profile --mode train` fits against tokens, and how it groups its points
TRAIN_FITTED = (
    "train_macs",
    "latency_median_ms",
    "train_memory_peak_bytes",
    "train_memory_saved_bytes",
)
TRAIN_FIT_GROUPS = ("model", "batch_size", "mode")
#: the exponents of the saved activations in :func:`train_sweep_rows`: eager, fused attention
SAVED_EXPONENT = {False: 1.4, True: 0.95}
WEIGHTS_BYTES = 5_717_416 * 4  # ViT-Ti in fp32


def train_step_row(model: str, img: int, batch: int, fused: bool, macs: float) -> dict:
    """One training point in `vitbench profile --mode train`'s form (ViT patch 16 tokens)."""
    tokens = (img // 16) ** 2 + 1
    saved = 2**10 * (40 if not fused else 200) * tokens ** SAVED_EXPONENT[fused] * batch
    step_ms = 0.5 * tokens**1.1 * batch**0.8  # larger batches train faster per image
    return {
        "model": model,
        "mode": "train",
        "img_size": img,
        "batch_size": batch,
        "tokens": tokens,
        "params": 5_717_416,
        "macs": macs,
        "train_macs": 2.9 * macs,
        "latency_median_ms": step_ms,
        "latency_cv": 0.01,
        "throughput_sps": 1000 * batch / step_ms,
        "mfu": 2 * 2.9 * macs * batch / step_ms / 1e9 / 0.5,  # of 0.5 TFLOP/s
        "optimizer": "adamw",
        "grad_checkpointing": False,
        "fused_attn": fused,
        "train_memory_peak_bytes": 4 * WEIGHTS_BYTES + saved,
        "train_memory_weights_bytes": WEIGHTS_BYTES,
        "train_memory_grads_bytes": WEIGHTS_BYTES,
        "train_memory_optimizer_bytes": 2 * WEIGHTS_BYTES,
        "train_memory_saved_bytes": saved,
        "train_memory_method": "profiler-memory-events",
        "train_memory_parts_method": "tensor sizes",
        "train_memory_saved_method": "saved-tensor hooks",
        "status": "ok",
        "precision": "fp32",
    }


def train_sweep_rows(fused: bool) -> list[dict]:
    """ViT-Ti training steps at batch 2 over 64 to 256 px (17 to 257 tokens)."""
    model = "vit_tiny_patch16_224"
    return [
        train_step_row(model, img, 2, fused, 1.26e9 * ((img // 16) ** 2 + 1) / 197)
        for img in (64, 128, 192, 256)
    ]


def write_train_cost_store(path: Path) -> Path:
    """The profile store, with ViT-B/16 training steps at 224 px (batch 1 and 4) and ViT-Ti
    training sweeps over tokens with eager and with fused attention, each with its fits."""
    write_profile_store(path)
    bench = [train_step_row("vit_base_patch16_224", 224, b, True, 17.58e9) for b in (1, 4)]
    write(bench, path, "profile", "run-t", env())
    for run_id, fused in (("run-eager", False), ("run-fused", True)):
        rows = train_sweep_rows(fused)
        write(rows, path, "profile", run_id, env())
        write(train_fit_rows(rows), path, "profile_fit", run_id, env())
    return path


def train_fit_rows(rows: list[dict]) -> list[dict]:
    """The training fits of ``rows``, as `vitbench profile --mode train` stores them."""
    from vitbench.measure.scaling import fit_scaling

    return fit_scaling(rows, ys=TRAIN_FITTED, group_by=TRAIN_FIT_GROUPS)


def write(rows: list[dict], path: Path, table: str, run_id: str, environment: dict) -> None:
    """Store ``rows`` in ``path/vitbench.db`` as one run's records, as the commands write them."""
    with store.open_store(path) as st:
        store.Recorder(st, environment, run_id).write(table, rows)


def write_profile_store(path: Path) -> Path:
    write(profile_rows(), path, "profile", "run-a", env())
    write(fit_rows(), path, "profile_fit", "run-a", env())
    return path


def assert_close(text: str, value: float, rel: float = 1e-3) -> None:
    """``text`` (a formatted cell) reads back as ``value``."""
    number = float(text.replace(",", "").rstrip("%x"))
    assert math.isclose(number, value, rel_tol=rel), (text, value)


def attention_rows(model: str, weights: str, layers: int = 3, heads: int = 2) -> list[dict]:
    """One row per layer x head in `vitbench.attention.analyze_attention`'s form.

    Head h of layer l looks 10 * (l + 1) + h pixels away, so the first layer's mean is 10.5 px.
    """
    return [
        {
            "model": model,
            "layer": layer,
            "head": head,
            "mean_distance_px": 10.0 * (layer + 1) + head,
            "entropy": 2.0 + 0.1 * layer,
            "entropy_norm": 0.5 + 0.1 * layer,
            "cls_attention": 0.1,
            "self_attention": 0.2,
            "importance": 0.5 + 0.1 * head,
            "cluster": head,
            "proj_x": float(layer),
            "proj_y": float(head),
            "weights": weights,
            "checkpoint": "runs/digits/model.safetensors" if weights == "checkpoint" else None,
            "img_size": "32x32",
            "images": "digits",
            "n_images": 8,
        }
        for layer in range(layers)
        for head in range(heads)
    ]


def write_attention_store(path: Path) -> Path:
    """Two analyses (random init and a checkpoint), the second with a stored rollout figure."""
    write(attention_rows("vit_small_patch16_224", "random"), path, "attention", "att-1", env())
    rows = attention_rows("scratch_vit_tiny", "checkpoint")
    write([{**r, "rollout_figure": ROLLOUT} for r in rows], path, "attention", "att-2", env())
    figure = {"name": ROLLOUT, "media_type": "image/png", "data": PNG_1x1}
    write([figure], path, "figures", "att-2", env())
    return path


#: the name under which `vitbench analyze attention` stores a run's rollout overlay
ROLLOUT = "scratch_vit_tiny_rollout"


#: a valid 1 x 1 PNG, standing in for the rollout figure `vitbench analyze attention` saves
PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def train_rows(run_id: str = "train-1", n_epochs: int = 3) -> tuple[list[dict], list[dict]]:
    """Epoch rows and the final row of a run, in `vitbench.train.train`'s form."""
    epochs = [
        {
            "model": "scratch_vit_tiny_patch16_224",
            "dataset": "digits",
            "epoch": e,
            "train_loss": 2.0 / e,
            "train_acc": 0.9 * e / n_epochs,
            "val_loss": 2.2 / e,
            "val_acc": 0.9 * e / n_epochs - 0.05,
            "lr": 1e-3,
            "images_per_s": 1500.0,
        }
        for e in range(1, n_epochs + 1)
    ]
    confusion = [[18, 0, 2], [1, 19, 0], [0, 3, 17]]
    final = {
        "model": "scratch_vit_tiny_patch16_224",
        "dataset": "digits",
        "img_size": 8,
        "in_chans": 1,
        "num_classes": 3,
        "epochs": n_epochs,
        "params": 136_138,
        "gmacs": 0.002429888,
        "train_images": 1257,
        "val_images": 180,
        "test_images": 60,
        "best_val_acc": 0.85,
        "best_epoch": n_epochs,
        "test_acc": 54 / 60,
        "train_s": 2.5,
        "images_per_s": 1500.0,
        "classes": ["0", "1", "2"],
        "confusion": confusion,
        "most_confused": [
            {"true": "2", "pred": "1", "count": 3},
            {"true": "0", "pred": "2", "count": 2},
        ],
        "precision": "fp32",
    }
    return epochs, [final]


def write_train_store(path: Path, n_epochs: int = 3) -> Path:
    epochs, runs = train_rows(n_epochs=n_epochs)
    write(epochs, path, "train_epochs", "train-1", env())
    write(runs, path, "train_runs", "train-1", env())
    return path


def write_sweep_store(path: Path) -> Path:
    write(sweep_rows(), path, "sweep", "sweep-1", env())
    return path


def sweep_rows() -> list[dict]:
    """A 2 x 2 sweep over embed_dim and depth in `vitbench.train.sweep`'s form."""
    rows = []
    for embed_dim, depth, acc in ((32, 2, 0.90), (32, 4, 0.92), (64, 2, 0.94), (64, 4, 0.96)):
        rows.append(
            {
                "model": "scratch_vit_tiny_patch16_224",
                "dataset": "digits",
                "embed_dim": embed_dim,
                "depth": depth,
                "cell": f"embed_dim={embed_dim},depth={depth}",
                "cell_run_id": f"cell-{embed_dim}-{depth}",
                "params": 1000 * embed_dim * depth,
                "gmacs": 1e-5 * embed_dim * depth,
                "best_val_acc": acc,
                "test_acc": acc,
                "test_loss": 1 - acc,
                "train_s": 3.0,
                "config_hash": f"h{embed_dim}{depth}",
            }
        )
    return rows


def write_full_store(path: Path) -> Path:
    """Every kind of result at a realistic size: a benchmark profile, an image-size sweep with
    fits, training steps (eager and fused sweeps with fits), attention for two 12 x 12-head
    models with rollouts, 50 epochs of training, a sweep."""
    write_train_cost_store(path)
    for run_id, model, weights in (
        ("att-1", "vit_small_patch16_224", "random"),
        ("att-2", "scratch_vit_tiny", "checkpoint"),
    ):
        name = f"{model}_rollout"
        rows = [{**r, "rollout_figure": name} for r in attention_rows(model, weights, 12, 12)]
        write(rows, path, "attention", run_id, env())
        write(
            [{"name": name, "media_type": "image/png", "data": PNG_1x1}],
            path,
            "figures",
            run_id,
            env(),
        )
    write_train_store(path, n_epochs=50)
    return write_sweep_store(path)


def report_recording_panels(store_path: Path, out: Path, monkeypatch) -> tuple[str, dict, Path]:
    """The report of one store, the series its panel figures drew by (figure, panel title,
    label), and the report's folder."""
    from vitbench.report import build_report, plots

    drawn: dict = {}
    real = plots.panels

    def recording(items, path, ncols=None):
        drawn.update({(path.stem, p.title, s.label): s for p in items for s in p.series})
        return real(items, path, ncols)

    monkeypatch.setattr(plots, "panels", recording)
    report = build_report([store_path], out)
    return report.read_text(), drawn, report.parent
