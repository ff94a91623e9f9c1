"""Report figures drawn with matplotlib's Agg canvas, sized for a README (800 px wide).

Every function takes plain data, writes one PNG and returns its path. Figures come from
:func:`vitbench.plotting.subplots`, so no global backend or pyplot state is touched.
Margins are fixed in inches rather than left to a layout engine, which would draw every
figure twice (once to measure it) and doubled the report's time. Inside :func:`deferred`,
figures are rendered at the end, on every core (each PNG is independent of the others).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from vitbench.missing import is_missing
from vitbench.plotting import save_png, subplots

WIDTH_IN, DPI = 8.0, 100  # 800 px, legible at README width
#: room for tick labels and axis labels (left, bottom), titles (top), in inches
LEFT_IN, RIGHT_IN, BOTTOM_IN, TOP_IN = 0.8, 0.25, 0.6, 0.4
COLORBAR_LABEL_IN = 0.5  # a colorbar's label, right of the last panel
LEGEND_ROW_IN = 0.22  # one row of a figure legend below the panels


@dataclass(frozen=True)
class Series:
    """One line of a plot; ``exponent`` (with ``prefactor``, in the plotted unit) draws the
    fitted power law y = prefactor * x^exponent instead of joining the points, over
    ``fitted`` (x from, to; default the points' range); points at an x in ``left_out`` are
    drawn hollow; ``note`` is written at the line's end (the exponent, or why no law)."""

    label: str
    x: Sequence[float]
    y: Sequence[float]
    exponent: float | None = None
    prefactor: float | None = None
    note: str | None = None
    fitted: tuple[float, float] | None = None
    left_out: Sequence[float] = ()


@dataclass(frozen=True)
class Panel:
    title: str
    xlabel: str
    ylabel: str
    series: Sequence[Series]
    logx: bool = False
    logy: bool = False
    base_x: int = 10
    integer_x: bool = False  # ticks on whole numbers only (layers, blocks)


def _figure(
    ncols: int, nrows: int = 1, height: float = 3.6, width: float = WIDTH_IN
) -> tuple[Figure, np.ndarray]:
    fig, axes = subplots(nrows, ncols, figsize=(width, height * nrows), dpi=DPI, squeeze=False)
    _margins(fig)
    return fig, axes


def _margins(fig: Figure, bottom_in: float = BOTTOM_IN, right_in: float = RIGHT_IN) -> None:
    """Fixed margins in inches, so labels keep their room whatever the figure's size."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=LEFT_IN / width,
        right=1 - right_in / width,
        bottom=bottom_in / height,
        top=1 - TOP_IN / height,
        wspace=0.35,
        hspace=0.55,
    )


def _title(ax: Axes, text: str) -> None:
    """A panel title at a fixed height (matplotlib's automatic one measures every tick label)."""
    ax.set_title(text, fontsize=10, y=1.0)


#: figures waiting to be rendered, while inside `deferred()`
_pending: list[tuple[Figure, Path]] | None = None


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if _pending is None:
        save_png(fig, path, DPI)
    else:
        _pending.append((fig, path))
    return path


def _render_share(figures: Sequence[tuple[Figure, Path]]) -> bool:
    """Render figures one after the other; False if any failed (in a forked child)."""
    try:
        for fig, path in figures:
            save_png(fig, path, DPI)
    except Exception:  # the parent renders the share again and raises
        return False
    return True


def _shares(figures: list[tuple[Figure, Path]], n: int) -> list[list[tuple[Figure, Path]]]:
    """``figures`` dealt to ``n`` processes by their panels, heaviest first, each to the
    lightest share so far (a figure's drawing time grows with its axes)."""
    shares: list[list[tuple[Figure, Path]]] = [[] for _ in range(n)]
    loads = [0] * n
    for item in sorted(figures, key=lambda item: -len(item[0].axes)):
        k = loads.index(min(loads))
        shares[k].append(item)
        loads[k] += max(1, len(item[0].axes))
    return shares


def _render_all(figures: list[tuple[Figure, Path]]) -> None:
    """Render ``figures`` on every core: forked children share them without pickling.

    Each of ``n`` processes (the parent included) renders a share of about equal weight; a
    child's failed share is rendered again in the parent, so its error surfaces there.
    """
    n = max(1, min(len(figures), os.cpu_count() or 1)) if hasattr(os, "fork") else 1
    shares = _shares(figures, n)
    children = []
    for share in shares[1:]:
        pid = os.fork()
        if pid == 0:
            os._exit(0 if _render_share(share) else 1)
        children.append((pid, share))
    for fig, path in shares[0]:
        save_png(fig, path, DPI)
    for pid, share in children:
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            for fig, path in share:
                save_png(fig, path, DPI)


@contextmanager
def deferred() -> Iterator[None]:
    """Collect the figures drawn inside and render them at the end, on every core."""
    global _pending
    _pending = []
    try:
        yield
        _render_all(_pending)
    finally:
        _pending = None


def _power_law_line(s: Series) -> tuple[np.ndarray, np.ndarray] | None:
    """The fitted power law over the series' x range (positive x only)."""
    x = np.asarray(s.fitted if s.fitted is not None else s.x, float)
    x = x[x > 0]
    if is_missing(s.exponent) or is_missing(s.prefactor) or x.size < 2:
        return None
    grid = np.geomspace(x.min(), x.max(), 50)
    return grid, s.prefactor * grid**s.exponent


def _plain_log_ticks(ax: Axes, which: str, base: int) -> None:
    """Log-axis ticks printed as plain numbers (8, 16, 0.5), not as powers."""
    axis = ax.xaxis if which == "x" else ax.yaxis
    subs = (1.0,) if base == 2 else (1.0, 2.0, 3.0, 5.0)
    axis.set_major_locator(LogLocator(base=base, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _end(s: Series) -> tuple[float, float] | None:
    """Where a series' note is written: the end of its fitted law, else its last point."""
    line = _power_law_line(s)
    if line is not None:
        return line[0][-1], line[1][-1]
    x, y = np.asarray(s.x, float), np.asarray(s.y, float)
    order = np.argsort(x)
    return (x[order][-1], y[order][-1]) if x.size else None


def _top_note(series: Sequence[Series]) -> Series | None:
    """Of 2+ series with notes, the one ending highest: its note goes above its end, so two
    lines ending close together do not write their notes over each other."""
    ends = [(end[1], i) for i, s in enumerate(series) if s.note and (end := _end(s)) is not None]
    return series[max(ends)[1]] if len(ends) >= 2 else None


def _draw_series(ax: Axes, s: Series, color: str, above: bool = False) -> object:
    """Markers (hollow where left out of the fit), the fitted power law (dashed) or a plain
    line, and the note at the end (below it, or ``above``); returns the legend handle."""
    x, y = np.asarray(s.x, float), np.asarray(s.y, float)
    order = np.argsort(x)
    (handle,) = ax.plot(
        x[order],
        y[order],
        marker="o",
        ms=4 if len(x) <= 20 or s.exponent is not None else 0,
        color=color,
        lw=1 if s.exponent is None else 0,
    )
    hollow = np.isin(x, np.asarray(s.left_out, float))
    if hollow.any():
        ax.plot(x[hollow], y[hollow], "o", ms=4, color=color, mfc="white", lw=0)
    line = _power_law_line(s)
    if line is not None:
        ax.plot(*line, "--", color=color, lw=1)
    if s.note and x.size:
        ax.annotate(
            s.note,
            _end(s),
            textcoords="offset points",
            xytext=(-2, 6 if above else -6),
            ha="right",
            va="bottom" if above else "top",
            fontsize=8,
            color=color,
        )
    return handle


def panels(items: Sequence[Panel], path: Path, ncols: int | None = None) -> Path:
    """Line plots side by side with one legend below them; fitted power laws dashed.

    A series with an exponent is drawn as markers with its fitted line, other series as
    markers joined by a plain line; a series' note is written at its end. Series with the same
    label share a colour across panels.
    """
    ncols = ncols or min(len(items), 3)
    nrows = math.ceil(len(items) / ncols)
    fig, axes = _figure(ncols, nrows)
    colors: dict[str, str] = {}
    handles: dict[str, object] = {}
    for ax, panel in zip(axes.flat, items, strict=False):
        top = _top_note(panel.series)
        if top is not None:
            ax.margins(y=0.15)  # room inside the panel for the note above the highest end
        for s in panel.series:
            color = colors.setdefault(s.label, f"C{len(colors) % 10}")
            handles.setdefault(s.label, _draw_series(ax, s, color, above=s is top))
        if panel.logx:
            ax.set_xscale("log", base=panel.base_x)
            _plain_log_ticks(ax, "x", panel.base_x)
        if panel.logy:
            ax.set_yscale("log")
            _plain_log_ticks(ax, "y", 10)
        if panel.integer_x:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _title(ax, panel.title)
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(items) :]:
        ax.set_visible(False)
    if handles:
        rows = math.ceil(len(handles) / 3)
        fig.legend(list(handles.values()), list(handles), loc="lower center", ncols=3, fontsize=8)
        _margins(fig, BOTTOM_IN + LEGEND_ROW_IN * rows)
    return _save(fig, path)


def scatter_by_layer(
    groups: Sequence[tuple[str, Sequence[int], Sequence[float]]],
    path: Path,
    ylabel: str,
    xlabel: str = "layer (depth)",
) -> Path:
    """One panel per model: a dot per head at its layer, and the per-layer mean as a line."""
    fig, axes = _figure(min(len(groups), 3), math.ceil(len(groups) / 3))
    for ax, (title, layers, values) in zip(axes.flat, groups, strict=False):
        layers_a, values_a = np.asarray(layers, int), np.asarray(values, float)
        ax.scatter(layers_a, values_a, s=10, alpha=0.6, label="one head")
        uniq = np.unique(layers_a)
        ax.plot(uniq, [values_a[layers_a == u].mean() for u in uniq], color="C3", label="mean")
        _title(ax, title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")  # heads spread out least in deep layers
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    return _save(fig, path)


def heatmaps(
    grids: Sequence[tuple[str, np.ndarray]],
    path: Path,
    colorbar: str,
    xlabel: str = "head",
    ylabel: str = "layer",
    annotate: bool = False,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    aspect: str = "auto",
) -> Path:
    """One heatmap per panel (rows: ``ylabel``, columns: ``xlabel``) with a colorbar each.

    ``vmin``/``vmax`` fix one colour scale for every panel, so panels compare.
    """
    ncols = min(len(grids), 3)
    # square cells need no more width than the panels take
    width = WIDTH_IN if aspect == "auto" else min(WIDTH_IN, 0.5 + 4.2 * ncols)
    fig, axes = _figure(ncols, math.ceil(len(grids) / 3), height=3.8, width=width)
    _margins(fig, right_in=COLORBAR_LABEL_IN)
    for ax, (title, grid) in zip(axes.flat, grids, strict=False):
        im = ax.imshow(
            grid, aspect=aspect, cmap=cmap, interpolation="nearest", vmin=vmin, vmax=vmax
        )
        _title(ax, title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        rows, cols = grid.shape
        if cols <= 20:
            ax.set_xticks(range(cols))
        if rows <= 20:
            ax.set_yticks(range(rows))
        if annotate:  # non-zero cells, in black or white by the cell's luminance
            for (r, c), v in np.ndenumerate(grid):
                if v:
                    red, green, blue, _ = im.cmap(im.norm(v))
                    light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
                    ax.text(
                        c,
                        r,
                        f"{v:g}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="black" if light else "white",
                    )
        fig.colorbar(im, ax=ax, label=colorbar, shrink=0.85)
    for ax in list(axes.flat)[len(grids) :]:
        ax.set_visible(False)
    return _save(fig, path)


def labelled_scatter(
    points: Sequence[tuple[str, float, float]],
    path: Path,
    xlabel: str,
    ylabel: str,
    title: str,
    logx: bool = False,
) -> Path:
    """A scatter plot with each point named (e.g. sweep cells: accuracy against GMACs)."""
    fig, axes = _figure(1, height=4.2)
    ax = axes[0, 0]
    xs = [p[1] for p in points]
    ys = [p[2] for p in points]
    ax.scatter(xs, ys, s=25)
    for label, x, y in points:
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    if logx:
        ax.set_xscale("log")
        _plain_log_ticks(ax, "x", 10)
    ax.margins(x=0.2, y=0.1)  # room for the labels of the outermost points
    _title(ax, title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def clusters(
    groups: Sequence[tuple[str, Sequence[float], Sequence[float], Sequence[int]]], path: Path
) -> Path:
    """One panel per model: heads at their 2-D projection, coloured by cluster."""
    fig, axes = _figure(min(len(groups), 3), math.ceil(len(groups) / 3))
    for ax, (title, xs, ys, labels) in zip(axes.flat, groups, strict=False):
        labels_a = np.asarray(labels, int)
        for c in np.unique(labels_a):
            sel = labels_a == c
            ax.scatter(np.asarray(xs)[sel], np.asarray(ys)[sel], s=14, label=f"cluster {c}")
        _title(ax, title)
        ax.set_xlabel("component 1")
        ax.set_ylabel("component 2")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups) :]:
        ax.set_visible(False)
    return _save(fig, path)
