#!/usr/bin/env bash
# GPU figures for docs/benchmarks.md: exercises every CUDA path of `vitbench profile`
# (events, peak memory, TF32/fp32, AMP fp16/bf16, channels-last, torch.compile, OOM back-off).
# Usage: bash benchmarks/gpu_figures.sh OUTDIR   (on a machine with a CUDA GPU)
set -euo pipefail
out=${1:?output directory}
mkdir -p "$out"
vb() { python3 -m vitbench "$@" --device cuda --out "$out/store"; }
models="vit-b/16 vit-l/16 swin-t swin-b deit-b"
# the benchmark table in true fp32 (TF32 off) and bf16 autocast, batch 1 and 256
for p in fp32 bf16; do
  vb profile $models -b 1,256 --precision $p --budget 2 --format csv > "$out/table_$p.csv"
done
# ViT-B/16 in tf32 and fp16, channels-last, and torch.compile (compile time on its own)
vb profile vit-b/16 -b 256 --precision tf32 --budget 2 --format csv > "$out/vitb_tf32.csv"
vb profile vit-b/16 -b 256 --precision fp16 --budget 2 --format csv > "$out/vitb_fp16.csv"
vb profile vit-b/16 -b 256 --precision bf16 --channels-last --budget 2 --format csv \
  > "$out/vitb_cl.csv"
vb profile vit-b/16 -b 256 --precision bf16 --compile --budget 2 --format csv \
  > "$out/vitb_compile.csv"
# scaling with tokens: ViT-B/16 from 65 to 4097 tokens
vb profile vit-b/16 -b 8 --precision bf16 --img-size 128,224,384,512,768,1024 --budget 2 \
  --format csv > "$out/vitb_scaling.csv"
# out of memory: recorded as such, then the batch is halved until it fits
vb profile vit-l/16 -b 16384 --precision bf16 --metrics params,flops,memory \
  --format csv > "$out/vitl_oom.csv"
