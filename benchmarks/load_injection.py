"""Load injected during one point of a sweep: what the rounds, the flag and the fits make of it.

The issue's case: ViT-Ti and DeiT-Ti at 64 and 96 px on the CPU. While the first round of one
point runs, N busy processes share the CPU; they stop when the next point starts. Prints each
point's round medians, its figure and flag, the machine readings, and the latency fits.

    python benchmarks/load_injection.py [busy processes (4)] [threads (2)]
"""

from __future__ import annotations

import subprocess
import sys

from vitbench.measure.options import ProfileOptions
from vitbench.measure.profile import profile

BURN = "import time\nend = time.monotonic() + 120\nwhile time.monotonic() < end: pass"
LOADED = "deit_tiny_patch16_224 img 64: infer batch 1"  # the step during which load runs


def main(busy: int = 4, threads: int = 2) -> None:
    burners: list[subprocess.Popen] = []

    def on_step(text: str, _done: int) -> None:
        for proc in burners:
            proc.kill()
            proc.wait()
        burners.clear()
        if text == LOADED:
            burners.extend(subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(busy))

    opts = ProfileOptions(
        metrics=frozenset({"params", "flops", "latency"}),
        img_sizes=(64, 96),
        device="cpu",
        threads=threads,
    )
    models = ["vit_tiny_patch16_224", "deit_tiny_patch16_224"]
    try:
        run = profile(models, opts, on_step=on_step)
    finally:
        on_step("", 0)
    print(f"load: {busy} busy processes during '{LOADED}' (round 1 only), {threads} threads")
    print("| model | img | round medians (ms) | figure (ms) | per-call CV | noisy | disagree |")
    print("|---|---|---|---|---|---|---|")
    for r in run.records:
        medians = ", ".join(f"{m:.2f}" for m in r["latency_round_medians_ms"])
        print(
            f"| {r['model']} | {r['img_size']} | {medians} | {r['latency_median_ms']:.2f} "
            f"| {r['latency_cv']:.1%} | {r['latency_noisy']} | {r['latency_rounds_disagree']} |"
        )
    for fit in run.fits:
        if fit["metric"] == "latency_median_ms":
            print({k: v for k, v in fit.items() if not k.startswith("env_")})
    for line in run.warnings:
        print("warning:", line)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
