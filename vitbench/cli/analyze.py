"""`vitbench analyze attention MODEL`: per-head attention distance, entropy, importance, rollout."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vitbench.attention.options import AttentionOptions, check_plots_dir
from vitbench.cli.app import app
from vitbench.cli.dataclass_options import with_options
from vitbench.cli.output import OutputFormat, emit, info, progress_bar, warn
from vitbench.cli.store_options import open_for_writing, out_option, store_option
from vitbench.errors import VitbenchError

if TYPE_CHECKING:
    from vitbench.attention import AttentionAnalysis, ImageSource
    from vitbench.store import Store

analyze_app = typer.Typer(help="Analyze what a model does: attention heads.", no_args_is_help=True)
app.add_typer(analyze_app, name="analyze")

COLUMNS = [
    "layer",
    "head",
    "mean_distance_px",
    "entropy",
    "entropy_norm",
    "cls_attention",
    "self_attention",
    "importance",
    "cluster",
]


def _fixed(digits: int):
    def fmt(v: object) -> str:
        return "-" if v is None or v != v else f"{v:.{digits}f}"

    return fmt


FORMATTERS = {
    "mean_distance_px": _fixed(1),
    "entropy": _fixed(3),
    "entropy_norm": _fixed(3),
    "cls_attention": _fixed(3),
    "self_attention": _fixed(3),
    "importance": _fixed(3),
}


@analyze_app.command("attention")
@with_options(AttentionOptions)
def attention_cmd(
    opts: AttentionOptions,
    model: str = typer.Argument(
        ...,
        help="Model name or alias (vit_small_patch16_224, deit-s), torchvision:NAME or a factory "
        "(file.py:fn, package.module:fn).",
    ),
    images: Path = typer.Option(None, "--images", help="An image file or a folder of images."),
    sample_images: bool = typer.Option(
        False, "--sample-images", help="Crops of scikit-learn's two sample photographs."
    ),
    dataset: str = typer.Option(
        None, "--dataset", help="A labelled dataset: digits (the default source)."
    ),
    out: Path = out_option(),
    store_url: str = store_option(),
    plots_dir: Path = typer.Option(
        None, help="Where the figures go (default: <out>/plots/<run id>/; none with --no-save)."
    ),
    save: bool = typer.Option(True, help="Write the records to the results store."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="stdout format."),
) -> None:
    """Mean attention distance, entropy, head importance, clusters and rollout, per head."""
    from vitbench.attention import analyze_attention_points
    from vitbench.zoo import load_imports, resolve_name

    source = _image_source(images, sample_images, dataset)
    opts.validate()
    if plots_dir is not None:
        check_plots_dir(plots_dir)
    load_imports(opts.imports)
    name = resolve_name(model)
    store = open_for_writing(out, store_url) if save else None
    with store or nullcontext(), progress_bar() as bar:
        task = bar.add_task(f"{name}: attention", total=opts.n_images)

        def progress(done: int, total: int, phase: str) -> None:
            bar.update(task, description=f"{name}: {phase}", completed=done, total=total)

        analyses = analyze_attention_points(
            name, source, opts, store=store, plots_dir=plots_dir, on_progress=progress
        )
    for analysis in analyses:
        _show(analysis, fmt, store)


def _image_source(images: Path | None, sample_images: bool, dataset: str | None) -> ImageSource:
    """The one image source the flags name (digits when none does)."""
    from vitbench.attention import ImageSource

    chosen = [s for s in (images is not None, sample_images, dataset is not None) if s]
    if len(chosen) > 1:
        raise VitbenchError("choose one image source: --images, --sample-images or --dataset")
    if dataset is not None and dataset != "digits":
        raise VitbenchError(f"unknown dataset '{dataset}': the embedded dataset is digits")
    if images is not None:
        return ImageSource("files", images)
    return ImageSource("sample" if sample_images else "digits")


def _show(analysis: AttentionAnalysis, fmt: OutputFormat, store: Store | None) -> None:
    """The notes, where the rows and figures went, and the table of heads."""
    for note in analysis.notes:
        warn(f"{analysis.model}: {note}")
    if store is not None:
        info(f"{len(analysis.records)} record(s) written to {store.label} (run {analysis.run_id})")
    if analysis.figures:
        info(f"figures: {', '.join(str(p) for p in analysis.figures.values())}")
    columns = [c for c in COLUMNS if any(r.get(c) is not None for r in analysis.records)]
    emit(
        analysis.records,
        fmt,
        columns=columns,
        formatters=FORMATTERS,
        title=f"{analysis.model}: attention per head ({analysis.records[0]['n_images']} images, "
        f"distance in px)",
    )
