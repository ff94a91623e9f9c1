"""`vitbench analyze attention`: per-head attention distance, entropy, importance and rollout
on images; per-head attention on sentences for a token model (--text); and one scaled
dot-product attention worked by hand (--qkv)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    from rich.progress import Progress, TaskID

    from vitbench.attention import AttentionAnalysis, ImageSource
    from vitbench.attention.text import TextAttentionAnalysis
    from vitbench.attention.text_input import TextSource
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


def _strongest_pair(pairs: object) -> str:
    """A head's strongest pair of tokens, 'movie -> cinema 0.25'."""
    if not pairs:
        return "-"
    source, target, weight = pairs[0]
    return f"{source} -> {target} {weight:.2f}"


def _vector(values: Sequence[float]) -> str:
    return "  ".join(f"{v:.4f}" for v in values)


FORMATTERS = {
    "mean_distance_px": _fixed(1),
    "entropy": _fixed(3),
    "entropy_norm": _fixed(3),
    "cls_attention": _fixed(3),
    "sep_attention": _fixed(3),
    "self_attention": _fixed(3),
    "importance": _fixed(3),
    "top_pairs": _strongest_pair,
    "scores": _vector,
    "weights": _vector,
    "context": _vector,
}
#: the per-sentence table of a text model
TEXT_COLUMNS = [
    "layer",
    "head",
    "entropy",
    "cls_attention",
    "sep_attention",
    "self_attention",
    "importance",
    "cluster",
    "top_pairs",
]


@analyze_app.command("attention")
@with_options(AttentionOptions)
def attention_cmd(
    opts: AttentionOptions,
    model: str = typer.Argument(
        None,
        help="Model name or alias (vit_small_patch16_224, deit-s, scratch_bert_base, hf:bert), "
        "torchvision:NAME or a factory (file.py:fn, package.module:fn). Absent with --qkv.",
    ),
    images: Path = typer.Option(None, "--images", help="An image file or a folder of images."),
    sample_images: bool = typer.Option(
        False, "--sample-images", help="Crops of scikit-learn's two sample photographs."
    ),
    dataset: str = typer.Option(
        None, "--dataset", help="A labelled dataset: digits (the default source)."
    ),
    texts: list[str] = typer.Option(
        None, "--text", help="A sentence for a text model (repeatable)."
    ),
    text_file: Path = typer.Option(None, "--text-file", help="Sentences, one per line."),
    vocab: Path = typer.Option(
        None, "--vocab", help="A BERT vocab.txt, for a text model that has no tokenizer."
    ),
    qkv: Path = typer.Option(
        None, "--qkv", help="Work softmax(q k^T / sqrt(d_k)) v from a JSON file of q, k, v."
    ),
    out: Path = out_option(),
    store_url: str = store_option(),
    plots_dir: Path = typer.Option(
        None, help="Where the figures go (default: <out>/plots/<run id>/; none with --no-save)."
    ),
    save: bool = typer.Option(True, help="Write the records to the results store."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="stdout format."),
) -> None:
    """Mean attention distance, entropy, head importance, clusters and rollout, per head; for a
    text model the same per sentence; with --qkv the scaled dot-product attention worked out."""
    from vitbench.attention import analyze_attention_points
    from vitbench.zoo import load_imports, resolve_name

    image_flags = images is not None or sample_images or dataset is not None
    if qkv is not None:
        if model is not None or texts or text_file is not None or image_flags:
            raise VitbenchError("--qkv works its file alone: give no MODEL, text or images")
        _show_worked(qkv, fmt)
        return
    if model is None:
        raise VitbenchError("give a MODEL (or --qkv FILE to work an attention by hand)")
    text = _text_source(texts or (), text_file, vocab, image_flags)
    # reading the sentences checks them (empty, missing file) before the store is opened
    total = len(text.sentences()) if text is not None else opts.n_images
    source = _image_source(images, sample_images, dataset) if text is None else None
    opts.validate()
    if plots_dir is not None:
        check_plots_dir(plots_dir)
    load_imports(opts.imports)
    name = resolve_name(model)
    store = open_for_writing(out, store_url) if save else None
    with store or nullcontext(), progress_bar() as bar:
        task = bar.add_task(f"{name}: attention", total=total)
        kwargs = dict(store=store, plots_dir=plots_dir, on_progress=_progress(bar, task, name))
        if text is None:
            analyses = analyze_attention_points(name, source, opts, **kwargs)
        else:
            from vitbench.attention.text import analyze_text_attention

            analyses = [analyze_text_attention(name, text, opts, **kwargs)]
    for analysis in analyses:
        (_show if text is None else _show_text)(analysis, fmt, store)


def _progress(bar: Progress, task: TaskID, name: str) -> Callable[[int, int, str], None]:
    """The on_progress callback that moves ``task`` of ``bar``."""

    def progress(done: int, total: int, phase: str) -> None:
        bar.update(task, description=f"{name}: {phase}", completed=done, total=total)

    return progress


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


def _text_source(
    texts: Sequence[str], file: Path | None, vocab: Path | None, image_flags: bool
) -> TextSource | None:
    """The sentences the flags give, or None when they give none (then images are analysed)."""
    from vitbench.attention.text_input import TextSource

    if not texts and file is None:
        if vocab is not None:
            raise VitbenchError("--vocab tokenizes text: give --text or --text-file with it")
        return None
    if image_flags:
        raise VitbenchError(
            "choose text (--text, --text-file) or images (--images, --sample-images, "
            "--dataset), not both"
        )
    return TextSource(tuple(texts), file, vocab)


def _show(analysis: AttentionAnalysis, fmt: OutputFormat, store: Store | None) -> None:
    """The notes, where the rows and figures went, and the table of heads."""
    _show_notes(analysis, store)
    columns = [c for c in COLUMNS if any(r.get(c) is not None for r in analysis.records)]
    emit(
        analysis.records,
        fmt,
        columns=columns,
        formatters=FORMATTERS,
        title=f"{analysis.model}: attention per head ({analysis.records[0]['n_images']} images, "
        f"distance in px)",
    )


def _show_notes(analysis: AttentionAnalysis | TextAttentionAnalysis, store: Store | None) -> None:
    """The analysis' notes, and where its rows and figures went (stderr)."""
    for note in analysis.notes:
        warn(f"{analysis.model}: {note}")
    if store is not None:
        info(f"{len(analysis.records)} record(s) written to {store.label} (run {analysis.run_id})")
    if analysis.figures:
        info(f"figures: {', '.join(str(p) for p in analysis.figures.values())}")


def _show_text(analysis: TextAttentionAnalysis, fmt: OutputFormat, store: Store | None) -> None:
    """A table of heads per sentence (CSV and JSON lines: every record, in one stream)."""
    _show_notes(analysis, store)
    if fmt is not OutputFormat.table:
        emit(analysis.records, fmt)
        return
    for i, tokens in enumerate(analysis.sentences):
        rows = [r for r in analysis.records if r["sentence"] == i]
        columns = [c for c in TEXT_COLUMNS if any(r.get(c) is not None for r in rows)]
        title = f"{analysis.model}, sentence {i}: {' '.join(tokens)}"
        emit(
            rows,
            fmt,
            columns=columns,
            formatters=FORMATTERS,
            headers={"top_pairs": "strongest pair"},
            title=title,
        )


def _show_worked(path: Path, fmt: OutputFormat) -> None:
    """softmax(q k^T * scale) v worked row by row from a file of q, k and v; stores nothing."""
    from vitbench.attention.worked import load_qkv, scaled_dot_product_attention_table

    q, k, v, scale = load_qkv(path)
    worked = scaled_dot_product_attention_table(q, k, v, scale)
    emit(
        worked.rows(),
        fmt,
        columns=["query", "scores", "weights", "context"],
        formatters=FORMATTERS,
        title=f"softmax(q k^T x {worked.scale:.4f}) v, one row per query",
    )
