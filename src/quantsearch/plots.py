"""Matplotlib renderings of the report's figure data (STYLE.md section 9: data apart from drawing).

Every function here draws what :mod:`quantsearch.report.pictures` computed
(:mod:`quantsearch.report.figures`) and computes no metric itself. Matplotlib is imported inside
the functions: it takes a second to import, which ``quantsearch --help`` should not pay.
Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, so nothing touches a
display or pyplot's global state, and each PNG is readable on its own: title, axis labels with
units, legend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from quantsearch.report.figures import CorrelationPlot, CurvePlot, Heatmap, ScatterPlot

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_correlation", "plot_curves", "plot_heatmap", "plot_scatter", "render"]

DPI = 100
_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _figure(width: float = 7.0, height: float = 4.5) -> tuple[Figure, Axes]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def _drawable(values: Sequence[float]) -> list[float]:
    """Infinite values (no feasible trial yet) as gaps."""
    return [v if math.isfinite(v) else math.nan for v in values]


def _xy(points: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [p[0] for p in points], [p[1] for p in points]


def _thousands(ax: Axes, axis: str) -> None:
    from matplotlib.ticker import FuncFormatter

    fmt = FuncFormatter(lambda v, _: f"{v:,.0f}")
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(fmt)


def plot_curves(data: CurvePlot, path: Path) -> Path:
    """Median line and IQR band per series (step functions), the reference dashed."""
    fig, ax = _figure()
    colors = [f"C{i}" for i in range(10)]
    for i, (label, curve) in enumerate(data.series):
        if not curve.x:
            continue
        color = colors[i % len(colors)]
        ax.fill_between(
            curve.x,
            _drawable(curve.q1),
            _drawable(curve.q3),
            step="post",
            color=color,
            alpha=0.15,
            linewidth=0,
        )
        ax.plot(
            curve.x,
            _drawable(curve.median),
            drawstyle="steps-post",
            color=color,
            linestyle=_STYLES[i % len(_STYLES)],
            marker=_MARKERS[i % len(_MARKERS)],
            markevery=max(1, len(curve.x) // 8),
            markersize=5,
            linewidth=1.8,
            label=label,
        )
    if data.reference is not None and math.isfinite(data.reference):
        ax.axhline(data.reference, color="black", linestyle=(0, (5, 4)), linewidth=1.2,
                   label=data.reference_label)  # fmt: skip
    ax.set_title(data.title)
    ax.set_xlabel(data.xlabel)
    ax.set_ylabel(data.ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def plot_scatter(data: ScatterPlot, path: Path) -> Path:
    """Every config; infeasible hollow, the front highlighted and joined, the baseline marked."""
    fig, ax = _figure()
    pts = list(zip(data.x, data.y, data.feasible, data.on_front, data.best, strict=True))
    feas = [(x, y) for x, y, f, o, _ in pts if f and not o]
    infeas = [(x, y) for x, y, f, _, _ in pts if not f]
    front = sorted((x, y) for x, y, _, o, _ in pts if o)
    best = [(x, y) for x, y, _, _, b in pts if b]
    if feas:
        ax.scatter(*_xy(feas), s=28, color="C0", alpha=0.7,
                   label=f"feasible config ({len(feas)})")  # fmt: skip
    if infeas:
        ax.scatter(*_xy(infeas), s=28, facecolors="none", edgecolors="0.45",
                   label=f"infeasible config ({len(infeas)})")  # fmt: skip
    if front:
        ax.plot(*_xy(front), color="C3", linewidth=1.2, alpha=0.8)
        ax.scatter(*_xy(front), s=150, facecolors="none", edgecolors="C3",
                   linewidths=2.0, zorder=3, label=f"front: non-dominated feasible ({len(front)})")  # fmt: skip
        ax.scatter(*_xy(front), s=22, color="C3", zorder=3)
    if best:
        ax.scatter(*_xy(best), s=70, marker="*", color="gold",
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
    return _save(fig, path)


def plot_correlation(data: CorrelationPlot, path: Path) -> Path:
    """Accuracy against loss, the rank correlations written on the plot."""
    fig, ax = _figure()
    ok = [(x, y) for x, y, f in zip(data.x, data.y, data.feasible, strict=True) if f]
    bad = [(x, y) for x, y, f in zip(data.x, data.y, data.feasible, strict=True) if not f]
    if ok:
        ax.scatter(*_xy(ok), s=30, color="C0", alpha=0.75,
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
    return _save(fig, path)


def plot_heatmap(data: Heatmap, path: Path) -> Path:
    """Configs by rows, node roles by columns, bits per element in colour and in each cell."""
    import numpy as np

    rows, cols = len(data.row_labels), len(data.col_labels)
    fig, ax = _figure(max(6.0, 0.95 * cols + 3.5), max(2.8, 0.42 * rows + 2.2))
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
    return _save(fig, path)


def render(data: object, path: Path) -> Path:
    """Draw any of the report's figure data types to a PNG at ``path``."""
    if isinstance(data, CurvePlot):
        return plot_curves(data, path)
    if isinstance(data, ScatterPlot):
        return plot_scatter(data, path)
    if isinstance(data, CorrelationPlot):
        return plot_correlation(data, path)
    if isinstance(data, Heatmap):
        return plot_heatmap(data, path)
    raise TypeError(f"no renderer for {type(data).__name__}")
