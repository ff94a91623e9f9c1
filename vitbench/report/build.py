"""`build_report`: read result stores, write ``report.md`` and the PNG figures it links.

The report reads stored rows only and never re-measures, so it can be written anywhere from
stores measured elsewhere (a GPU box, a colleague's laptop). A section appears when its table
has rows. Stores are results directories holding ``vitbench.db``, SQLite files or database
URLs; a store listed twice is read once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from vitbench import __version__
from vitbench.errors import VitbenchError
from vitbench.report import plots
from vitbench.report.context import Context
from vitbench.report.environment import differing_fields
from vitbench.report.markdown import Document
from vitbench.report.sections import (
    attention,
    cost,
    pretrain,
    segmentation,
    text_attention,
    token_reduction,
    training,
    training_cost,
)
from vitbench.report.tables import with_mode
from vitbench.store import DB_FILE, Store, open_store, read_table, resolve_url

SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
#: the record tables the report reads whole (figures are read by name, as sections need them)
TABLES = (
    "profile",
    "profile_fit",
    "attention",
    "train_epochs",
    "train_runs",
    "token_reduction",
    "sweep",
    "pretrain_epochs",
)
REPORT_NAME = "report.md"
#: the first line of every report.md vitbench writes (older ones start with their heading)
MARKER = "written by vitbench report"
_STARTS = (f"<!-- {MARKER} -->", "# vitbench report")
_IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")

StoreTarget = str | os.PathLike | Store


def _check_directory(target: str | os.PathLike) -> None:
    """A results directory must hold a database; one of vitbench 0.1's CSV tables is imported."""
    path = Path(target)
    if path.is_file() and path.suffix not in SQLITE_SUFFIXES:
        raise VitbenchError(
            f"{path} is a file, not a results store: give a results directory (holding "
            f"{DB_FILE}), an SQLite file or a database URL"
        )
    if not path.is_dir() or (path / DB_FILE).exists():
        return
    if any((path / f"{name}.csv").is_file() for name in TABLES):
        raise VitbenchError(
            f"{path} holds CSV results from vitbench 0.1, not a database: "
            f"import them once with `vitbench import {path}`, then report on it"
        )
    raise VitbenchError(f"no results store in {path}: it holds no {DB_FILE}")


def _name(target: StoreTarget, st: Store) -> str:
    """How the report names a store: as given, or a URL without its password."""
    return st.label if "://" in os.fspath(target) else os.fspath(target)


def open_stores(targets: Sequence[StoreTarget]) -> dict[str, Store]:
    """Each store opened for reading once however often it is listed, by its name."""
    by_url: dict[str, tuple[str, Store]] = {}
    for target in targets:
        if isinstance(target, Store):  # an open store (the demo's) is read as it is
            by_url.setdefault(str(target.url), (target.label, target))
            continue
        _check_directory(target)
        url = resolve_url(target)
        if url not in by_url:
            st = open_store(url, create=False)
            by_url[url] = (_name(target, st), st)
    return dict(by_url.values())


def load_tables(stores: dict[str, Store]) -> dict[str, pd.DataFrame]:
    """Every known table from every store; the ``store`` column holds the store's name."""
    names = {st.label: name for name, st in stores.items()}
    tables = {}
    for table in TABLES:
        df = read_table(list(stores.values()), table)
        if not df.empty:
            df["store"] = df["store"].map(names)
        tables[table] = df
    return tables


def build_report(stores: Sequence[StoreTarget], out_dir: str | os.PathLike | None = None) -> Path:
    """Write ``out_dir/report.md`` (and ``out_dir/figures/*.png``) and return its path.

    ``out_dir`` defaults to the first store's directory (``results`` for a database server).
    """
    opened = open_stores(stores)
    if not opened:
        raise VitbenchError("no results store given")
    try:
        tables = load_tables(opened)
        if all(df.empty for df in tables.values()):
            raise VitbenchError(
                f"no results in {', '.join(opened)}: run `vitbench profile`, "
                "`vitbench analyze attention` or `vitbench train` first"
            )
        out = Path(out_dir) if out_dir is not None else next(iter(opened.values())).artifacts
        ctx = Context(Document(out / REPORT_NAME), stores=opened)
        previous = _previous_figures(ctx.doc.path)
        with plots.deferred():
            _write(ctx, {name: ctx.envs.tag(df, name) for name, df in tables.items()})
        path = ctx.doc.write()
        _remove_stale(previous, _linked(ctx.doc.text(), out), ctx.figures)
        return path
    finally:
        for st in opened.values():
            st.close()


def _linked(text: str, base: Path) -> set[Path]:
    """The images a markdown text links, as paths under ``base``."""
    return {base / link for link in _IMAGE_LINK.findall(text)}


def _previous_figures(path: Path) -> set[Path]:
    """The figures an earlier report at ``path`` linked; refuse a file vitbench did not write."""
    if not path.exists():
        return set()
    text = path.read_text(errors="replace")
    if not text.startswith(_STARTS):
        raise VitbenchError(
            f"{path} was not written by vitbench report: not overwriting it "
            "(choose another out_dir, or move the file)"
        )
    return _linked(text, path.parent)


def _remove_stale(previous: set[Path], current: set[Path], figures: Path) -> None:
    """Delete the PNGs under ``figures`` the earlier report linked and this one does not."""
    for stale in previous - current:
        if stale.suffix == ".png" and stale.parent == figures and stale.is_file():
            stale.unlink()


def _write(ctx: Context, tables: dict[str, pd.DataFrame]) -> None:
    """Every section whose tables have rows, in the report's order."""
    _intro(ctx)
    # points measured with token merging or pruning have their own section, beside the plain
    # model; every other section reads the plain model only
    every, attn = with_mode(tables["profile"]), tables["attention"]
    profile, fits = every[~token_reduction.reduced(every)], with_mode(tables["profile_fit"])
    if not profile.empty:
        infer = profile[profile["mode"] == "infer"]
        cost.add_benchmark(ctx, profile)
        cost.add_scaling(ctx, infer, fits[fits["mode"] == "infer"])
        cost.add_batch_scaling(ctx, infer)
        cost.add_utilization(ctx, profile)
        train = profile[profile["mode"] == "train"]
        training_cost.add_training_cost(ctx, train, fits[fits["mode"] == "train"])
    if not attn.empty:
        attention.add_attention(ctx, attn[~token_reduction.reduced(attn)])
        text_attention.add_text_attention(ctx, attn)
    epochs, seg_epochs = segmentation.split(tables["train_epochs"])  # per image, per pixel
    runs, seg_runs = segmentation.split(tables["train_runs"])
    if not (epochs.empty and runs.empty):
        training.add_training(ctx, epochs, runs)
    if not tables["pretrain_epochs"].empty:
        pretrain.add_pretraining(ctx, tables["pretrain_epochs"], runs)
    segmentation.add_segmentation(ctx, seg_epochs, seg_runs)
    if not tables["sweep"].empty:
        training.add_sweep(ctx, tables["sweep"])
    token_reduction.add_token_reduction(ctx, tables["token_reduction"], every, attn)
    _environments(ctx)
    _sources(ctx)


def _intro(ctx: Context) -> None:
    doc = ctx.doc
    doc.comment(MARKER)
    doc.heading("vitbench report", 1)
    doc.paragraph(
        f"Written by vitbench {__version__} from the results stored in "
        + ", ".join(f"`{s}`" for s in ctx.stores)
        + ". Every number is read from those stores; nothing was measured again to write it. "
        "Where each came from is listed under *Environments*."
    )
    if ctx.many_envs:
        labels = list(ctx.envs.details)
        doc.warning(
            f"these results come from {len(labels)} environments that differ in "
            f"{', '.join(differing_fields(ctx.envs, labels))}; rows are labelled E1, E2, ... "
            "and tables that put rows from different environments side by side carry their own "
            "warning."
        )


def _environments(ctx: Context) -> None:
    doc = ctx.doc
    doc.heading("Environments")
    doc.paragraph("Where each result came from (rows counted per table):")
    doc.table(ctx.envs.table())


def _sources(ctx: Context) -> None:
    if not ctx.sources.cited:
        return
    ctx.doc.heading("Sources")
    ctx.doc.paragraph(
        "Published figures are kept as data in `vitbench/data/published.csv`, one row per "
        "model and source:"
    )
    ctx.doc.numbered(ctx.sources.cited)
