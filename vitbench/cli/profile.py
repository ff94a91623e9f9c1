"""`vitbench profile MODEL...`: parameters, MACs, latency, memory and utilization over a sweep."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import typer

from vitbench.cli.app import app
from vitbench.cli.dataclass_options import with_options
from vitbench.cli.output import OutputFormat, emit, info, progress_bar, scaled, warn
from vitbench.cli.store_options import (
    open_for_writing,
    out_option,
    print_on_failure,
    store_option,
)
from vitbench.measure.options import ProfileOptions

_mib = scaled(2**-20, ",.1f")
_m = scaled(1e-6, ",.2f")
_g = scaled(1e-9, ",.3f")
_pct = scaled(100, ".1f", "%")
_ms = scaled(1, ",.2f")


@app.command("profile")
@with_options(ProfileOptions)
def profile_cmd(
    opts: ProfileOptions,
    models: list[str] = typer.Argument(
        None,
        help="Model names, aliases (ViT-B/16, swin-t), globs (vit_*), torchvision:NAME or a "
        "factory (file.py:fn, package.module:fn). Default: the five-row benchmark table.",
    ),
    out: Path = out_option(),
    store_url: str = store_option(),
    save: bool = typer.Option(True, help="Write the records to the results store."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="stdout format."),
) -> None:
    """Profile models: params, MACs, latency, throughput, memory, MFU and scaling fits."""
    from vitbench.measure.profile import profile
    from vitbench.reference import BENCHMARK_TABLE
    from vitbench.zoo import expand_names, load_imports

    opts.validate()
    load_imports(opts.imports)
    names = expand_names(models or BENCHMARK_TABLE)
    store = open_for_writing(out, store_url) if save else None
    n_steps = len(names) * opts.n_shapes * opts.passes
    finished: list[dict[str, Any]] = []
    with (
        store or nullcontext(),
        print_on_failure(finished, lambda rows: _print(rows, [], fmt, opts)),
        progress_bar(disable=n_steps < 2 and not opts.timed) as bar,
    ):
        task = bar.add_task("profiling", total=n_steps)
        run = profile(
            names,
            opts,
            store=store,
            on_step=lambda d, done: bar.update(task, description=d, completed=done),
            on_record=finished.append,
        )
        bar.update(task, completed=n_steps)
    if store is not None:
        info(f"{len(run.records)} record(s) written to {store.label} (run {run.run_id})")
    _print(run.records, run.fits, fmt, opts)
    for line in run.warnings:
        warn(line)


HEADERS = {
    "img_size": "img",
    "batch_size": "batch",
    "tome_r": "ToMe r",
    "prune_keep": "keep",
    "params": "params (M)",
    "macs": "GMACs",
    "train_macs": "train GMACs",
    "published_gmacs": "timm GMACs",
    "diff": "diff",
    "latency_median_ms": "median ms",
    "latency_iqr_ms": "IQR ms",
    "latency_p99_ms": "p99 ms",
    "latency_cv": "CV",
    "throughput_sps": "samples/s",
    "mfu": "MFU",
    "memory_peak_bytes": "peak MiB",
    "train_memory_peak_bytes": "train peak MiB",
}
FORMATS = {
    "params": _m,
    "macs": _g,
    "train_macs": _g,
    "diff": _pct,
    "memory_peak_bytes": _mib,
    "train_memory_peak_bytes": _mib,
    "mfu": _pct,
    "latency_cv": _pct,
    "latency_median_ms": _ms,
    "latency_iqr_ms": _ms,
    "latency_p99_ms": _ms,
}


def _print(
    records: Sequence[dict[str, Any]],
    fits: Sequence[dict[str, Any]],
    fmt: OutputFormat,
    opts: ProfileOptions,
) -> None:
    """The rows (a table with published MACs beside ours, or CSV/JSON), warnings and fits."""
    if fmt is not OutputFormat.table:
        emit(records, fmt)
        return
    rows = _with_published(records)
    cols = _columns(rows, opts)
    emit(rows, fmt, columns=cols, title="vitbench profile", formatters=FORMATS, headers=HEADERS)
    for rec in records:
        where = f"{rec['model']} batch {rec['batch_size']}"
        if rec.get("mode") == "train":
            where += " (train)"
        if rec.get("uncounted_ops"):
            warn(f"{rec['model']}: operators not counted: {rec['uncounted_ops']}")
        if rec.get("train_uncounted_ops"):
            warn(f"{where}: training operators not counted: {rec['train_uncounted_ops']}")
        if rec.get("latency_noisy"):
            warn(f"{where}: {_noise(rec)}")
        if rec.get("status") == "oom":
            warn(f"{where}: out of memory")
    _print_breakdowns(records)
    _print_fits(fits)


def _with_published(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with timm's published GMACs and our difference beside them, where known."""
    from vitbench.reference import published_for

    rows = []
    for rec in records:
        pub = published_for(rec["model"], rec.get("img_size"))
        row = dict(rec)
        if pub is not None and rec.get("macs") is not None and pub.get("gmacs"):
            row["published_gmacs"] = pub["gmacs"]
            row["diff"] = rec["macs"] / 1e9 / pub["gmacs"] - 1
        rows.append(row)
    return rows


def _columns(rows: Sequence[dict[str, Any]], opts: ProfileOptions) -> list[str]:
    """The table's columns for what was measured."""
    train = "train" in opts.modes
    cols = ["model", "img_size", "batch_size", "tokens", "params"]
    cols[3:3] = [c for c in ("tome_r", "prune_keep") if any(r.get(c) is not None for r in rows)]
    if len(opts.modes) > 1 or train:
        cols.insert(1, "mode")
    if "flops" in opts.metrics:
        cols += ["macs", "train_macs"] if train else ["macs"]
        if any("published_gmacs" in r for r in rows):
            cols += ["published_gmacs", "diff"]
    if "latency" in opts.metrics:
        cols += ["latency_median_ms", "latency_iqr_ms", "latency_p99_ms", "latency_cv"]
        cols += ["throughput_sps", "mfu"]
    if "memory" in opts.metrics:
        cols += ["memory_peak_bytes"] if "infer" in opts.modes else []
        cols += ["train_memory_peak_bytes"] if train else []
    if any(r.get("status") == "oom" for r in rows):
        cols += ["status"]
    return cols


def _print_fits(fits: Sequence[dict[str, Any]]) -> None:
    """The power-law fits with their intervals and verdicts; a line for each note."""
    if not fits:
        return
    emit(
        fits,
        OutputFormat.table,
        columns=["model", "mode", "batch_size", "metric", "n_points", "exponent"]
        + ["exponent_ci95_low", "exponent_ci95_high", "r2", "quality", "excluded_points"],
        title="power-law fits against tokens (cost ~ tokens^exponent)",
        headers={
            "batch_size": "batch",
            "n_points": "points",
            "exponent_ci95_low": "95% low",
            "exponent_ci95_high": "95% high",
            "excluded_points": "left out",
        },
    )
    for fit in fits:  # an exact line through two points says so in its column, not here
        if fit.get("note") and (fit.get("quality") != "exact" or fit.get("excluded_points")):
            warn(f"{fit['model']} batch {fit['batch_size']} {fit['metric']}: {fit['note']}")


def _noise(rec: dict[str, Any]) -> str:
    """Why a point's timing is flagged: its rounds disagree, or its calls or rounds spread."""
    medians = ", ".join(f"{m:.3g}" for m in rec.get("latency_round_medians_ms") or [])
    if rec.get("latency_rounds_disagree"):
        return (
            f"timing rounds disagree (medians {medians} ms, measured again "
            f"{rec['latency_extra_rounds']} time(s)); the figure is their median"
        )
    spread = rec.get("latency_round_spread") or 0.0
    return (
        f"noisy timing (per-call CV {rec['latency_cv']:.0%}, rounds spread {spread:.0%}); "
        "compare medians with care"
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
