"""Matplotlib renderings of the report's figure data (STYLE.md section 9: data apart from drawing).

Every function here draws what :mod:`quantsearch.report.pictures` computed
(:mod:`quantsearch.report.figures`) and computes no metric itself. Matplotlib is imported inside
the functions: it takes a second to import, which ``quantsearch --help`` and a report whose
figures are all up to date should not pay. Figures are built on ``matplotlib.figure.Figure``
with the Agg canvas, so nothing touches a display or pyplot's global state, and each picture
is readable on its own: title, axis labels with units, legend.

Reports draw their SVG pictures without matplotlib (:mod:`quantsearch.report.svg`, the same
style, from :mod:`quantsearch.report.style`); PNG and PDF are drawn here.

The style is for papers and slides: PNG at :data:`DPI`, or SVG and PDF (text kept as text,
TrueType fonts embedded, no timestamps, so the same data gives the same file); integer ticks on
count axes; markers only on points that are data (scatter plots), never on curves; strategy
curves in the Okabe–Ito colour-blind-safe palette *and* in distinct line styles, assigned by
the order of their names so a strategy looks the same in every report of the same strategies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quantsearch.atomic import atomic_path
from quantsearch.report.figures import CorrelationPlot, CurvePlot, Heatmap, ScatterPlot
from quantsearch.report.style import BLUE, LINESTYLES, OKABE_ITO, VERMILLION, series_styles

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "FIGURE_FORMATS",
    "LINESTYLES",
    "OKABE_ITO",
    "draw",
    "plot_correlation",
    "plot_curves",
    "plot_heatmap",
    "plot_scatter",
    "render",
    "series_styles",
]

DPI = 200  # PNG resolution: sharp in print and on a projector
FIGURE_FORMATS = ("png", "svg", "pdf")
_RC: Any = {  # matplotlib types its keys as literals
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "svg.fonttype": "none",  # text stays text: searchable, editable, small
    "svg.hashsalt": "quantsearch",  # stable ids: the same data gives the same SVG
    "pdf.fonttype": 42,  # TrueType, not Type 3: what publishers ask for
}
_METADATA: dict[str, dict[str, Any]] = {
    "png": {},
    "svg": {"Date": None},
    "pdf": {"CreationDate": None, "ModDate": None},
}


def _figure(width: float = 6.4, height: float = 4.0) -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _drawable(values: Sequence[float]) -> list[float]:
    """Infinite values (no feasible trial yet) as gaps."""
    return [v if math.isfinite(v) else math.nan for v in values]


def _xy(points: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [p[0] for p in points], [p[1] for p in points]


def _thousands(ax: Axes, axis: str) -> None:
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:,.0f}")
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(fmt)


def plot_curves(data: CurvePlot) -> Figure:
    """Median line and IQR band per series (step functions, no markers: a curve is not a set
    of points), the reference dashed black, counts on x in integer ticks; y on a symmetric log
    axis with zero drawn when ``data.linthresh`` is set."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure()
    styles = series_styles([label for label, _ in data.series])
    for label, curve in data.series:
        if not curve.x:
            continue
        color, style = styles[label]
        ax.fill_between(curve.x, _drawable(curve.q1), _drawable(curve.q3), step="post",
                        color=color, alpha=0.18, linewidth=0)  # fmt: skip
        # where curves coincide all stay visible: each style is drawn thinner and above the one
        # before it (solid widest and lowest), so a lower curve shows at the edges of an upper one
        rank = LINESTYLES.index(style)
        ax.plot(curve.x, _drawable(curve.median), drawstyle="steps-post", color=color,
                linestyle=style, linewidth=2.8 - 0.5 * rank, label=label,
                zorder=2 + 0.1 * rank)  # fmt: skip
    if data.reference is not None and math.isfinite(data.reference):
        ax.axhline(data.reference, color="black", linestyle=(0, (5, 4)), linewidth=1.0,
                   label=data.reference_label)  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if data.linthresh > 0:
        ax.set_yscale("symlog", linthresh=data.linthresh, linscale=0.5)
        # a little below zero, so that curves at zero regret are not hidden by the axis line
        tops = [v for _, c in data.series for v in (*c.median, *c.q3) if math.isfinite(v)]
        top = max([data.linthresh, *tops]) * 1.6  # symlog's own margin clips the highest step
        ax.set_ylim(-0.25 * data.linthresh, top)
    ax.set_title(data.title)
    ax.set_xlabel(data.xlabel)
    ax.set_ylabel(data.ylabel)
    if data.note:
        fig.supxlabel(data.note, fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right" if data.linthresh > 0 else "lower right")
    return fig


def plot_scatter(data: ScatterPlot) -> Figure:
    """Every config; infeasible hollow, the front highlighted and joined, the baseline marked."""
    fig, ax = _figure()
    pts = list(zip(data.x, data.y, data.feasible, data.on_front, data.best, strict=True))
    feas = [(x, y) for x, y, f, o, _ in pts if f and not o]
    infeas = [(x, y) for x, y, f, _, _ in pts if not f]
    front = sorted((x, y) for x, y, _, o, _ in pts if o)
    best = [(x, y) for x, y, _, _, b in pts if b]
    if feas:
        ax.scatter(*_xy(feas), s=28, color=BLUE, alpha=0.7,
                   label=f"feasible config ({len(feas)})")  # fmt: skip
    if infeas:
        ax.scatter(*_xy(infeas), s=28, facecolors="none", edgecolors="0.45",
                   label=f"infeasible config ({len(infeas)})")  # fmt: skip
    if front:
        ax.plot(*_xy(front), color=VERMILLION, linewidth=1.2, alpha=0.8)
        ax.scatter(*_xy(front), s=150, facecolors="none", edgecolors=VERMILLION,
                   linewidths=2.0, zorder=3, label=f"front: non-dominated feasible ({len(front)})")  # fmt: skip
        ax.scatter(*_xy(front), s=22, color=VERMILLION, zorder=3)
    if best:
        ax.scatter(*_xy(best), s=70, marker="*", color="#F0E442",
                   edgecolors="black", linewidths=0.6, zorder=4, label="best objective")  # fmt: skip
    if data.baseline is not None:
        ax.scatter([data.baseline[0]], [data.baseline[1]], s=90, marker="X", color="black",
                   zorder=5, label="float baseline")  # fmt: skip
    ax.set_title(data.title)
    ax.set_xlabel(data.xlabel)
    ax.set_ylabel(data.ylabel)
    if "bit" in data.xlabel or "BitOP" in data.xlabel:
        _thousands(ax, "x")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig


def plot_correlation(data: CorrelationPlot) -> Figure:
    """Accuracy against loss, the rank correlations written on the plot."""
    fig, ax = _figure()
    ok = [(x, y) for x, y, f in zip(data.x, data.y, data.feasible, strict=True) if f]
    bad = [(x, y) for x, y, f in zip(data.x, data.y, data.feasible, strict=True) if not f]
    if ok:
        ax.scatter(*_xy(ok), s=30, color=BLUE, alpha=0.75,
                   label=f"feasible ({len(ok)})")  # fmt: skip
    if bad:
        ax.scatter(*_xy(bad), s=30, facecolors="none", edgecolors="0.45",
                   label=f"infeasible ({len(bad)})")  # fmt: skip
    ax.text(
        0.97,
        0.97,
        f"Spearman ρ = {data.spearman:.3f} (p = {data.spearman_p:.2g})\n"
        f"Kendall τ = {data.kendall:.3f} (p = {data.kendall_p:.2g})\nn = {len(data.x)} configs",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=9,
        bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9, "edgecolor": "0.7"},
    )
    ax.set_title(data.title)
    ax.set_xlabel(data.xlabel)
    ax.set_ylabel(data.ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def plot_heatmap(data: Heatmap) -> Figure:
    """Configs by rows, node roles by columns, bits per element in colour (viridis, readable
    in grey and to colour-blind readers) and in each cell."""
    import numpy as np

    rows, cols = len(data.row_labels), len(data.col_labels)
    fig, ax = _figure(min(12.0, max(6.0, 0.8 * cols + 3.0)), max(2.8, 0.4 * rows + 2.2))
    values = np.ma.masked_invalid(np.asarray(data.values, dtype=float).reshape(rows, cols))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    for i in range(rows):
        for j in range(cols):
            v = data.values[i][j]
            if math.isfinite(v):
                text = data.cells[i][j] or f"{v:g}"
                lo, hi = float(values.min()), float(values.max())
                dark = hi == lo or (v - lo) / (hi - lo) < 0.55
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")  # fmt: skip
    ax.set_xticks(range(cols), data.col_labels, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(rows), data.row_labels, fontsize=8)
    ax.set_title(data.title)
    ax.set_xlabel("node.role")
    ax.set_ylabel("config")
    bar = fig.colorbar(image, ax=ax)
    bar.set_label(data.colorbar)
    return fig


def draw(data: object) -> Figure:
    """A matplotlib ``Figure`` of any of the report's figure data types (not saved)."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        if isinstance(data, CurvePlot):
            return plot_curves(data)
        if isinstance(data, ScatterPlot):
            return plot_scatter(data)
        if isinstance(data, CorrelationPlot):
            return plot_correlation(data)
        if isinstance(data, Heatmap):
            return plot_heatmap(data)
    raise TypeError(f"no renderer for {type(data).__name__}")


def render(data: object, path: Path, figure_format: str | None = None) -> Path:
    """Draw ``data`` to ``path`` as PNG, SVG or PDF (``figure_format``, else the suffix).

    Example:
        >>> from quantsearch.report.figures import CurvePlot
        >>> render(CurvePlot("t", "trial (count)", "y", (), None, ""), Path("/tmp/f.svg")).suffix  # doctest: +SKIP
        '.svg'
    """
    import matplotlib

    fmt = figure_format or path.suffix.lstrip(".").lower()
    if fmt not in FIGURE_FORMATS:
        raise ValueError(f"figure format must be one of {list(FIGURE_FORMATS)} (got {fmt!r})")
    fig = draw(data)
    # Atomically: a full disk or a kill leaves the previous picture whole, never half of one.
    with matplotlib.rc_context(_RC), atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
    return path
