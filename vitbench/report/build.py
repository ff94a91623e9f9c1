"""`build_report`: read result stores, write ``report.md`` and the PNG figures it links.

The report reads stored rows only and never re-measures, so it can be written anywhere from
stores measured elsewhere (a GPU box, a colleague's laptop). A section appears when its table
has rows.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from vitbench import __version__
from vitbench.errors import VitbenchError
from vitbench.report.context import Context
from vitbench.report.environment import differing_fields
from vitbench.report.markdown import Document
from vitbench.report.sections import attention, cost, training
from vitbench.store import read_table

TABLES = ("profile", "profile_fit", "attention", "train_epochs", "train_runs", "sweep")
REPORT_NAME = "report.md"


def load_tables(stores: list[Path]) -> dict[str, pd.DataFrame]:
    """Every known table from every store (a ``store`` column says which)."""
    missing = [str(s) for s in stores if not Path(s).exists()]
    if missing:
        raise VitbenchError(f"results store not found: {', '.join(missing)}")
    return {name: read_table(stores, name) for name in TABLES}


def build_report(stores: list[Path], out_dir: Path) -> Path:
    """Write ``out_dir/report.md`` (and ``out_dir/figures/*.png``) and return its path."""
    stores = [Path(s) for s in stores]
    tables = load_tables(stores)
    if all(df.empty for df in tables.values()):
        raise VitbenchError(
            f"no results in {', '.join(map(str, stores))}: run `vitbench profile`, "
            "`vitbench analyze attention` or `vitbench train` first"
        )
    ctx = Context(Document(Path(out_dir) / REPORT_NAME))
    tables = {name: ctx.envs.tag(df, name) for name, df in tables.items()}
    _intro(ctx, stores)

    profile, fits = tables["profile"], tables["profile_fit"]
    if not profile.empty:
        cost.add_benchmark(ctx, profile)
        cost.add_scaling(ctx, profile, fits)
        cost.add_batch_scaling(ctx, profile)
        cost.add_utilization(ctx, profile)
    if not tables["attention"].empty:
        attention.add_attention(ctx, tables["attention"])
    if not (tables["train_epochs"].empty and tables["train_runs"].empty):
        training.add_training(ctx, tables["train_epochs"], tables["train_runs"])
    if not tables["sweep"].empty:
        training.add_sweep(ctx, tables["sweep"])
    _environments(ctx)
    _sources(ctx)
    return ctx.doc.write()


def _intro(ctx: Context, stores: list[Path]) -> None:
    doc = ctx.doc
    doc.heading("vitbench report", 1)
    doc.paragraph(
        f"Written by vitbench {__version__} from the results stored in "
        + ", ".join(f"`{s}`" for s in stores)
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
