"""Training memory of ViT-Ti on the CPU against tokens, eager against fused attention.

Prints the markdown tables of docs/methodology/memory.md: the split of one AdamW step (fp32)
at one image size, then the bytes saved for backward and the step's peak over image sizes, with
power-law fits over tokens (log-log least squares) from ``--fit-from`` tokens up.

    .venv/bin/python benchmarks/train_memory_fused.py
    .venv/bin/python benchmarks/train_memory_fused.py --sizes 224,320 --batch 2 --split-batch 2
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from vitbench.measure.memory import measure_train_memory
from vitbench.measure.scaling import fit_power_law
from vitbench.measure.train_step import build_train_step
from vitbench.zoo import ModelSpec, create_model, set_fused_attn

MODEL = "vit_tiny_patch16_224"
PATCH = 16
PARTS = ("weights", "grads", "optimizer", "saved", "baseline", "peak")
MiB = 2**20


def measure(img_size: int, fused: bool, batch: int) -> dict[str, Any]:
    """The training-memory record of one AdamW step of ViT-Ti at ``img_size`` px."""
    torch.manual_seed(0)
    spec = ModelSpec(MODEL, img_size=img_size)
    model = create_model(spec)
    set_fused_attn(model, fused)
    return measure_train_memory(build_train_step(model, spec, batch, device="cpu")).as_record()


def split_table(img_size: int, batch: int) -> str:
    """One row per attention kind: the parts and the peak, MiB."""
    lines = ["| attention | " + " | ".join(PARTS) + " |", "|---" * (len(PARTS) + 1) + "|"]
    for fused in (False, True):
        rec = measure(img_size, fused, batch)
        cells = [f"{rec[f'train_memory_{p}_bytes'] / MiB:.1f}" for p in PARTS]
        lines.append(f"| {'fused' if fused else 'eager'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sweep_table(sizes: list[int], batch: int, fit_from: int) -> str:
    """Saved and peak-over-baseline bytes per size and attention kind, and their fits."""
    tokens = {s: (s // PATCH) ** 2 + 1 for s in sizes}
    figures: dict[tuple[str, str], list[int]] = {}  # (figure, attention) -> bytes per size
    for size in sizes:
        for kind, fused in (("eager", False), ("fused", True)):
            rec = measure(size, fused, batch)
            over = rec["train_memory_peak_bytes"] - rec["train_memory_baseline_bytes"]
            figures.setdefault(("saved", kind), []).append(rec["train_memory_saved_bytes"])
            figures.setdefault(("peak over baseline", kind), []).append(over)
    lines = [
        "| px | tokens | " + " | ".join(f"{f} {k}" for f, k in figures) + " |",
        "|---:" * (len(figures) + 2) + "|",
    ]
    for i, size in enumerate(sizes):
        cells = " | ".join(f"{v[i] / MiB:.1f}" for v in figures.values())
        lines.append(f"| {size} | {tokens[size]} | {cells} |")
    lines.append("")
    fit_at = [i for i, size in enumerate(sizes) if tokens[size] >= fit_from]
    for (figure, kind), values in figures.items():
        fit = fit_power_law([tokens[sizes[i]] for i in fit_at], [values[i] for i in fit_at])
        r2 = "-" if fit.r2 is None else f"{fit.r2:.4f}"
        lines.append(
            f"- {figure}, {kind}: exponent {fit.exponent:.2f} over {fit.x_min:.0f} -> "
            f"{fit.x_max:.0f} tokens ({fit.n_points} points, R² {r2})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="224,320,448,544,640", help="image sizes, px")
    parser.add_argument("--batch", type=int, default=1, help="batch size of the sweep")
    parser.add_argument("--split-size", type=int, default=224)
    parser.add_argument("--split-batch", type=int, default=8)
    parser.add_argument("--fit-from", type=int, default=785, help="fit from this many tokens")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {MODEL}, AdamW, fp32\n")
    print(f"split at {args.split_size} px, batch {args.split_batch} (MiB):\n")
    print(split_table(args.split_size, args.split_batch))
    print(f"\nover image sizes, batch {args.batch} (MiB):\n")
    sizes = [int(s) for s in args.sizes.split(",")]
    print(sweep_table(sizes, args.batch, args.fit_from))


if __name__ == "__main__":
    main()
