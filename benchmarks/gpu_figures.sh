#!/usr/bin/env bash
# GPU figures for docs/benchmarks.md: exercises every CUDA path of `vitbench profile`
# (events, peak memory, TF32/fp32, AMP fp16/bf16, channels-last, torch.compile, OOM back-off).
# Usage: bash benchmarks/gpu_figures.sh OUTDIR   (on a machine with a CUDA GPU)
set -euo pipefail
out=${1:?output directory}
mkdir -p "$out"
vb() { python3 -m vitbench "$@" --device cuda --out "$out/store"; }
models="vit-b/16 vit-l/16 swin-t swin-b deit-b"
# the benchmark table: fp32 (TF32 off), tf32, bf16 and fp16 autocast at batch 1 and 256
for p in fp32 tf32 bf16 fp16; do
  vb profile $models -b 1,256 --precision $p --budget 3 --format csv > "$out/table_$p.csv"
done
# channels-last and torch.compile on ViT-B/16 (compile time reported on its own)
vb profile vit-b/16 -b 256 --precision bf16 --channels-last --format csv > "$out/vitb_cl.csv"
vb profile vit-b/16 -b 256 --precision bf16 --compile --format csv > "$out/vitb_compile.csv"
# scaling with tokens: ViT-B/16 from 64 to 4097 tokens
vb profile vit-b/16 -b 8 --precision bf16 --img-size 128,224,384,512,768,1024 \
  --format csv > "$out/vitb_scaling.csv"
# out of memory: recorded, then the batch is halved until it fits
vb profile vit-l/16 -b 65536 --precision fp32 --metrics params,flops,latency --budget 1 \
  --format csv > "$out/vitl_oom.csv"
