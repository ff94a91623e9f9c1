"""`vitbench analyze attention MODEL`: per-head attention distance, entropy, importance, rollout."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import typer

from vitbench.cli.app import app
from vitbench.cli.output import OutputFormat, emit, info, progress_bar, warn
from vitbench.cli.store_options import open_for_writing, out_option, store_option
from vitbench.errors import VitbenchError

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
def attention_cmd(
    model: str = typer.Argument(..., help="Model name or alias (vit_small_patch16_224, deit-s)."),
    images: Path = typer.Option(None, "--images", help="An image file or a folder of images."),
    sample_images: bool = typer.Option(
        False, "--sample-images", help="Crops of scikit-learn's two sample photographs."
    ),
    dataset: str = typer.Option(
        None, "--dataset", help="A labelled dataset: digits (the default source)."
    ),
    n_images: int = typer.Option(32, "--n-images", "-n", help="Images to analyse."),
    batch_size: int = typer.Option(8, "--batch-size", "-b", help="Images per forward."),
    checkpoint: Path = typer.Option(None, help="Weights file (safetensors or torch)."),
    pretrained: bool = typer.Option(False, help="Load timm's pretrained weights."),
    img_size: int = typer.Option(None, help="Input size override (pixels)."),
    num_classes: int = typer.Option(None, help="Classifier classes (e.g. 10 for digits)."),
    model_kwargs: str = typer.Option(None, help="timm keyword overrides, e.g. 'depth=6'."),
    renormalise: bool = typer.Option(
        False,
        "--renormalise/--no-renormalise",
        help="Rescale rows to sum to one after dropping prefix tokens (default: as the ViT "
        "authors, not renormalised).",
    ),
    fusion: str = typer.Option("mean", help="Rollout head fusion: mean, max or min."),
    discard_ratio: float = typer.Option(
        0.0, help="Rollout: zero this share of each row's lowest weights (never the class token)."
    ),
    importance: str = typer.Option(
        "gradient",
        help="Head importance: gradient (Michel et al. gate gradient), mask (one head at a time, "
        "layers x heads extra forwards), both, none.",
    ),
    projection: str = typer.Option("pca", help="2-D projection of head clusters: pca or tsne."),
    clusters: int = typer.Option(None, help="Number of head clusters (default: by silhouette)."),
    overlays: int = typer.Option(6, help="Images shown with rollout overlays."),
    device: str = typer.Option(None, help="cpu or cuda (default: cuda when available)."),
    out: Path = out_option(),
    store_url: str = store_option(),
    plots_dir: Path = typer.Option(
        None, help="Where the figures go (default: <out>/plots/<run id>/; none with --no-save)."
    ),
    save: bool = typer.Option(True, help="Write the records to the results store."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="stdout format."),
) -> None:
    """Mean attention distance, entropy, head importance, clusters and rollout, per head."""
    import torch

    from vitbench.attention import ImageSource, analyze_attention
    from vitbench.attention.analysis import check_options
    from vitbench.zoo import ModelSpec, parse_kwargs, resolve_name

    chosen = [s for s in (images is not None, sample_images, dataset is not None) if s]
    if len(chosen) > 1:
        raise VitbenchError("choose one image source: --images, --sample-images or --dataset")
    if dataset is not None and dataset != "digits":
        raise VitbenchError(f"unknown dataset '{dataset}': the embedded dataset is digits")
    source = (
        ImageSource("files", images)
        if images is not None
        else ImageSource("sample")
        if sample_images
        else ImageSource("digits")
    )
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    check_options(
        device=dev,
        fusion=fusion,
        discard_ratio=discard_ratio,
        importance=importance,
        projection=projection,
        n_clusters=clusters,
        plots_dir=plots_dir,
    )
    spec = ModelSpec(
        resolve_name(model),
        img_size=img_size,
        num_classes=num_classes,
        kwargs=parse_kwargs(model_kwargs),
    )
    store = open_for_writing(out, store_url) if save else None
    with store or nullcontext(), progress_bar() as bar:
        task = bar.add_task(f"{spec.name}: attention", total=n_images)

        def progress(done: int, total: int, phase: str) -> None:
            bar.update(task, description=f"{spec.name}: {phase}", completed=done, total=total)

        analysis = analyze_attention(
            spec,
            source,
            pretrained=pretrained,
            checkpoint=checkpoint,
            n_images=n_images,
            batch_size=batch_size,
            device=dev,
            renormalise=renormalise,
            fusion=fusion,
            discard_ratio=discard_ratio,
            importance=importance,
            projection=projection,
            n_clusters=clusters,
            n_overlays=overlays,
            on_progress=progress,
            store=store,
            plots_dir=plots_dir,
        )
    for note in analysis.notes:
        warn(f"{spec.name}: {note}")
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
        title=f"{spec.name}: attention per head ({analysis.records[0]['n_images']} images, "
        f"distance in px)",
    )
