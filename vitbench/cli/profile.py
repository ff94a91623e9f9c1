"""`vitbench profile MODEL...`: parameters, MACs, latency, memory and utilization over a sweep."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer

from vitbench.cli.app import app
from vitbench.cli.output import OutputFormat, emit, info, progress_bar, scaled, warn
from vitbench.cli.store_options import (
    open_for_writing,
    out_option,
    print_on_failure,
    store_option,
)
from vitbench.errors import VitbenchError
from vitbench.measure.options import METRICS, ProfileOptions


def parse_int_list(text: str | None, what: str) -> list[int | None]:
    """'1,8,32' -> [1, 8, 32], repeats dropped in order; None or '' -> [None] (the default)."""
    if not text:
        return [None]
    out: list[int | None] = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise VitbenchError(
                f"{what} must be integers separated by commas, got '{text}'"
            ) from None
        if value < 1:
            raise VitbenchError(f"{what} must be positive, got {value}")
        out.append(value)
    return list(dict.fromkeys(out))


def _metrics(text: str) -> frozenset[str]:
    chosen = {m.strip() for m in text.split(",") if m.strip()}
    aliases = {"throughput": "latency", "mfu": "latency", "macs": "flops"}
    chosen = {aliases.get(m, m) for m in chosen}
    bad = chosen - set(METRICS)
    if bad:
        raise VitbenchError(
            f"unknown metric(s) {', '.join(sorted(bad))}; choose from {', '.join(METRICS)}"
        )
    return frozenset(chosen | {"params"})


_mib = scaled(2**-20, ",.1f")
_m = scaled(1e-6, ",.2f")
_g = scaled(1e-9, ",.3f")
_pct = scaled(100, ".1f", "%")
_ms = scaled(1, ",.2f")


@app.command("profile")
def profile_cmd(
    models: list[str] = typer.Argument(
        None,
        help="Model names, aliases (ViT-B/16, swin-t) or globs (vit_*). "
        "Default: the five-row benchmark table.",
    ),
    metrics: str = typer.Option(
        ",".join(METRICS),
        help="What to measure: params,flops,latency,memory (params,flops never times anything).",
    ),
    batch_size: str = typer.Option("1", "--batch-size", "-b", help="Batch sizes, e.g. 1,8,32."),
    img_size: str = typer.Option(None, "--img-size", help="Image sizes to sweep, e.g. 112,224."),
    patch_size: str = typer.Option(None, "--patch-size", help="Patch sizes to sweep, e.g. 8,16."),
    seq_len: str = typer.Option(None, "--seq-len", help="Sequence lengths (token models)."),
    in_chans: int = typer.Option(None, help="Input channels override."),
    num_classes: int = typer.Option(None, help="Classifier classes override."),
    model_kwargs: str = typer.Option(
        None, help="timm keyword overrides, e.g. 'depth=6,embed_dim=384'."
    ),
    device: str = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
    precision: str = typer.Option("fp32", help="fp32, tf32, fp16 or bf16 (autocast)."),
    threads: int = typer.Option(None, help="CPU threads (applied and recorded)."),
    channels_last: bool = typer.Option(False, help="Channels-last memory format."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model."),
    fused_attn: bool = typer.Option(
        None, "--fused-attn/--no-fused-attn", help="Force timm's fused attention on or off."
    ),
    cudnn_benchmark: bool = typer.Option(False, help="Let cuDNN autotune per shape."),
    warmup: int = typer.Option(3, help="Warm-up calls after the first call, not timed."),
    budget: float = typer.Option(2.0, help="Seconds of timed calls per point at most."),
    min_runs: int = typer.Option(5, help="Timed calls at least."),
    max_runs: int = typer.Option(1000, help="Timed calls at most."),
    rel_precision: float = typer.Option(
        0.02, help="Stop when the 95% CI of the median is within this fraction of it."
    ),
    oom_backoff: bool = typer.Option(
        True, help="On out-of-memory, record it and retry at half the batch size."
    ),
    peak_tflops: float = typer.Option(None, help="Peak TFLOP/s for MFU (else table/measured)."),
    pretrained: bool = typer.Option(False, help="Load timm's pretrained weights."),
    checkpoint: Path = typer.Option(
        None, help="Weights file (safetensors or torch, weights only)."
    ),
    breakdown: int = typer.Option(0, help="Per-module MACs at this depth (e.g. 1 or 2)."),
    out: Path = out_option(),
    store_url: str = store_option(),
    save: bool = typer.Option(True, help="Write the records to the results store."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="stdout format."),
) -> None:
    """Profile models: params, MACs, latency, throughput, memory, MFU and scaling fits."""
    import torch

    from vitbench.measure.profile import profile
    from vitbench.reference import BENCHMARK_TABLE
    from vitbench.zoo import expand_names, parse_kwargs

    names = expand_names(models or BENCHMARK_TABLE)
    opts = ProfileOptions(
        metrics=_metrics(metrics),
        batch_sizes=[b for b in parse_int_list(batch_size, "batch sizes") if b] or [1],
        img_sizes=parse_int_list(img_size, "image sizes"),
        patch_sizes=parse_int_list(patch_size, "patch sizes"),
        seq_lens=parse_int_list(seq_len, "sequence lengths"),
        in_chans=in_chans,
        num_classes=num_classes,
        model_kwargs=parse_kwargs(model_kwargs),
        device=device or ("cuda" if torch.cuda.is_available() else "cpu"),
        precision=precision,
        threads=threads,
        channels_last=channels_last,
        compile=compile,
        fused_attn=fused_attn,
        cudnn_benchmark=cudnn_benchmark,
        warmup=warmup,
        budget_s=budget,
        min_runs=min_runs,
        max_runs=max_runs,
        rel_precision=rel_precision,
        oom_backoff=oom_backoff,
        peak_tflops=peak_tflops,
        pretrained=pretrained,
        checkpoint=str(checkpoint) if checkpoint else None,
        breakdown_depth=breakdown,
    )
    opts.validate()
    store = open_for_writing(out, store_url) if save else None
    n_shapes = len(names) * opts.n_shapes
    finished: list[dict[str, Any]] = []
    with (
        store or nullcontext(),
        print_on_failure(finished, lambda rows: _print(rows, [], fmt, opts)),
        progress_bar(disable=n_shapes < 2 and not opts.timed) as bar,
    ):
        task = bar.add_task("profiling", total=n_shapes)
        run = profile(
            names,
            opts,
            store=store,
            on_step=lambda d, done: bar.update(task, description=d, completed=done),
            on_record=finished.append,
        )
        bar.update(task, completed=n_shapes)
    if store is not None:
        info(f"{len(run.records)} record(s) written to {store.label} (run {run.run_id})")
    _print(run.records, run.fits, fmt, opts)


def _print(
    records: Sequence[dict[str, Any]],
    fits: Sequence[dict[str, Any]],
    fmt: OutputFormat,
    opts: ProfileOptions,
) -> None:
    """The rows (a table with published MACs beside ours, or CSV/JSON), warnings and fits."""
    from vitbench.reference import published_for

    if fmt is not OutputFormat.table:
        emit(records, fmt)
        return
    rows = []
    for rec in records:
        pub = published_for(rec["model"], rec.get("img_size"))
        row = dict(rec)
        if pub is not None and rec.get("macs") is not None and pub.get("gmacs"):
            row["published_gmacs"] = pub["gmacs"]
            row["diff"] = rec["macs"] / 1e9 / pub["gmacs"] - 1
        rows.append(row)
    cols = ["model", "img_size", "batch_size", "tokens", "params"]
    fmts = {
        "params": _m,
        "macs": _g,
        "diff": _pct,
        "memory_peak_bytes": _mib,
        "mfu": _pct,
        "latency_cv": _pct,
    }
    if "flops" in opts.metrics:
        cols += ["macs"]
        if any("published_gmacs" in r for r in rows):
            cols += ["published_gmacs", "diff"]
    if "latency" in opts.metrics:
        cols += ["latency_median_ms", "latency_iqr_ms", "latency_p99_ms", "latency_cv"]
        cols += ["throughput_sps", "mfu"]
        fmts.update(latency_median_ms=_ms, latency_iqr_ms=_ms, latency_p99_ms=_ms)
    if "memory" in opts.metrics:
        cols += ["memory_peak_bytes"]
    if any(r.get("status") == "oom" for r in rows):
        cols += ["status"]
    headers = {
        "img_size": "img",
        "batch_size": "batch",
        "params": "params (M)",
        "macs": "GMACs",
        "published_gmacs": "timm GMACs",
        "diff": "diff",
        "latency_median_ms": "median ms",
        "latency_iqr_ms": "IQR ms",
        "latency_p99_ms": "p99 ms",
        "latency_cv": "CV",
        "throughput_sps": "samples/s",
        "mfu": "MFU",
        "memory_peak_bytes": "peak MiB",
    }
    emit(rows, fmt, columns=cols, title="vitbench profile", formatters=fmts, headers=headers)
    for rec in records:
        if rec.get("uncounted_ops"):
            warn(f"{rec['model']}: operators not counted: {rec['uncounted_ops']}")
        if rec.get("latency_noisy"):
            warn(
                f"{rec['model']} batch {rec['batch_size']}: noisy timing "
                f"(CV {rec['latency_cv']:.0%}); compare medians with care"
            )
        if rec.get("status") == "oom":
            warn(f"{rec['model']} batch {rec['batch_size']}: out of memory")
    _print_breakdowns(records)
    if fits:
        emit(
            fits,
            OutputFormat.table,
            columns=["model", "batch_size", "metric", "exponent", "exponent_high", "r2"],
            title="power-law fits against tokens (cost ~ tokens^exponent)",
        )


def _print_breakdowns(records: Sequence[dict[str, Any]]) -> None:
    """Per-module MACs (``--breakdown``), once per model and shape."""
    shown: set[tuple] = set()
    for rec in records:
        parts = rec.get("macs_by_module")
        key = (rec["model"], rec.get("img_size"), rec.get("patch_size"), rec.get("seq_len"))
        if not parts or key in shown:
            continue
        shown.add(key)
        rows = [
            {"module": name, "macs": macs, "share": macs / rec["macs"] if rec["macs"] else None}
            for name, macs in sorted(parts.items(), key=lambda kv: -kv[1])
        ]
        emit(
            rows,
            OutputFormat.table,
            columns=["module", "macs", "share"],
            title=f"{rec['model']} MACs per module (one sample)",
            formatters={"macs": scaled(1e-9, ".4g"), "share": _pct},
            headers={"macs": "GMACs"},
        )
