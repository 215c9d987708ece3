"""The report's figures drawn as SVG in plain Python: no matplotlib, numpy nor torch import, so
a report draws its pictures in milliseconds (``--figure-format svg``, the default; PNG and PDF
are matplotlib's, :mod:`quantsearch.plots`).

Each function draws what :mod:`quantsearch.report.pictures` computed
(:mod:`quantsearch.report.figures`) in the style of :mod:`quantsearch.plots`: the same canvas
sizes, colours and line styles per strategy (:mod:`quantsearch.report.style`), markers only on
points that are data, integer ticks on count axes, thousands separators on bit axes, the
symmetric-log regret axis with zero labelled, legends, titles and axis labels. Axes, ticks and
scales are :mod:`quantsearch.report.svg_axes`; elements, the axes box and legends
:mod:`quantsearch.report.svg_shapes`; the point pictures :mod:`quantsearch.report.svg_points`,
the bitwidths :mod:`quantsearch.report.svg_heatmap`; ``templates/figure.svg`` writes the
elements, escaping every text. The same data gives the same bytes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

from quantsearch.report.figures import CorrelationPlot, CurvePlot, FigureData, Heatmap, ScatterPlot
from quantsearch.report.style import LINESTYLES, series_styles
from quantsearch.report.svg_axes import (
    Axis,
    data_limits,
    linear_axis,
    symlog_axis,
)
from quantsearch.report.svg_heatmap import draw_heatmap
from quantsearch.report.svg_points import draw_correlation, draw_scatter
from quantsearch.report.svg_shapes import (
    CORNERS,
    FONT,
    PT,
    Element,
    Frame,
    LegendEntry,
    Sample,
    axes_groups,
    el,
    finite,
    group,
    layout,
    legend,
    num,
    page,
)

__all__ = ["SOURCES", "dasharray", "draw_curves", "render_svg"]

# what a figure's bytes depend on: a change to any of them draws the pictures again
SOURCES = tuple(
    Path(__file__).parent / name
    for name in (
        "svg.py",
        "svg_points.py",
        "svg_heatmap.py",
        "svg_axes.py",
        "svg_shapes.py",
        "style.py",
        "templates/figure.svg",
    )
)
# matplotlib's dash patterns (lines.dashed_pattern ...), in line widths
_DASHES = {"-": (), "--": (3.7, 1.6), ":": (1.0, 1.65), "-.": (6.4, 1.6, 1.0, 1.6)}


def dasharray(style: str, width: float) -> str | None:
    """The SVG ``stroke-dasharray`` of a matplotlib line style at ``width`` px (``None``: solid).

    Example:
        >>> dasharray("--", 2.0), dasharray("-", 2.0)
        ('7.4 3.2', None)
    """
    return " ".join(num(d * width) for d in _DASHES[style]) or None


def _steps(f: Frame, xs: Sequence[float], ys: Sequence[float]) -> list[str]:
    """A step-after line (matplotlib's ``steps-post``) as path pieces; a non-finite value is a
    gap, the step into it drawn."""
    pieces: list[str] = []
    d = ""
    for i, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if not math.isfinite(y):
            if d:
                pieces.append(d)
            d = ""
            continue
        d += f"{'L' if d else 'M'}{num(f.px(x))} {num(f.py(y))}"
        if i + 1 < len(xs):
            d += f"H{num(f.px(xs[i + 1]))}"
    if d:
        pieces.append(d)
    return pieces


def _band(f: Frame, xs: Sequence[float], lo: Sequence[float], hi: Sequence[float]) -> list[str]:
    """The step-after area between ``lo`` and ``hi`` (``fill_between(step="post")``), as one
    closed path per run of finite values."""
    runs: list[list[int]] = [[]]
    for i in range(len(xs)):
        if math.isfinite(lo[i]) and math.isfinite(hi[i]):
            runs[-1].append(i)
        elif runs[-1]:
            runs.append([])
    out = []
    for run in (r for r in runs if r):
        top = [(f.px(xs[run[0]]), f.py(hi[run[0]]))]
        bottom = [(f.px(xs[run[0]]), f.py(lo[run[0]]))]
        for a, b in itertools.pairwise(run):
            top += [(f.px(xs[b]), f.py(hi[a])), (f.px(xs[b]), f.py(hi[b]))]
            bottom += [(f.px(xs[b]), f.py(lo[a])), (f.px(xs[b]), f.py(lo[b]))]
        pts = [*top, *bottom[::-1]]
        out.append("M" + "L".join(f"{num(x)} {num(y)}" for x, y in pts) + "Z")
    return out


def _line_sample(color: str, width: float, dash: str | None) -> Sample:
    def draw(x: float, y: float) -> list[Element]:
        half = FONT["legend"] * 1.0
        return [
            el(
                "path",
                d=f"M{num(x - half)} {num(y)}h{num(2 * half)}",
                stroke=color,
                stroke_width=width,
                stroke_dasharray=dash,
                fill="none",
            )
        ]

    return draw


def draw_curves(data: CurvePlot) -> str:
    """Median step lines with IQR bands per series (no markers), the reference dashed black;
    y symmetric-log when ``data.linthresh`` > 0 (zero drawn and labelled)."""
    w, h = 640.0, 400.0
    drawn = [(label, c) for label, c in data.series if c.x]
    xs = [float(x) for _, c in drawn for x in c.x]
    ref = data.reference if data.reference is not None and math.isfinite(data.reference) else None
    ys = finite([v for _, c in drawn for v in (*c.median, *c.q1, *c.q3)])
    tick = FONT["tick"]
    xlo, xhi = data_limits(xs)
    if data.linthresh > 0:
        tops = finite([v for _, c in drawn for v in (*c.median, *c.q3)])
        ylo, yhi = -0.25 * data.linthresh, max([data.linthresh, *tops]) * 1.6

        def y_of(n: float) -> Axis:
            return symlog_axis(ylo, yhi, data.linthresh, n, tick)
    else:
        ylo, yhi = data_limits([*ys, *([ref] if ref is not None else [])])

        def y_of(n: float) -> Axis:
            return linear_axis(ylo, yhi, n, tick, vertical=True)

    f = layout(w, h, lambda n: linear_axis(xlo, xhi, n, tick, integer=True), y_of, bool(data.note))
    under, over = axes_groups(f, w, h, data.title, data.xlabel, data.ylabel, data.note)
    styles = series_styles([label for label, _ in data.series])
    bands, lines, entries = [], [], []
    for label, c in sorted(drawn, key=lambda s: LINESTYLES.index(styles[s[0]][1])):
        color, style = styles[label]
        # where curves coincide all stay visible: each style thinner and above the one before
        width = (2.8 - 0.5 * LINESTYLES.index(style)) * PT
        dash = dasharray(style, width)
        bands += [el("path", d=d, fill=color) for d in _band(f, c.x, c.q1, c.q3)]
        lines += [
            el("path", d=d, stroke=color, stroke_width=width, stroke_dasharray=dash)
            for d in _steps(f, c.x, c.median)
        ]
        entries.append(LegendEntry(label, _line_sample(color, width, dash)))
    groups = [*under, group("bands", bands, fill_opacity=0.18, stroke="none")]
    if ref is not None:
        dash = " ".join(num(v * PT) for v in (5, 4))
        line = el("path", d=f"M{num(f.left)} {num(f.py(ref))}h{num(f.width)}")
        groups.append(
            group(
                "reference",
                [line],
                stroke="#000000",
                stroke_width=PT,
                stroke_dasharray=dash,
                fill="none",
            )
        )
        entries.append(LegendEntry(data.reference_label, _line_sample("#000000", PT, dash)))
    groups += [group("series", lines, fill="none", stroke_linejoin="round"), *over]
    if entries:
        first = "upper right" if data.linthresh > 0 else "lower right"
        corners = (first, *(c for c in CORNERS if c != first))
        where = [
            (f.px(x), f.py(y))
            for _, c in drawn
            for x, y in zip(c.x, c.median, strict=True)
            if math.isfinite(y)
        ]
        groups.append(legend(f, entries, FONT["legend"], corners, where))
    return page(data.title, w, h, groups)


def render_svg(data: FigureData | object) -> str:
    """The SVG document of any of the report's figure data types.

    Example:
        >>> from quantsearch.report.figures import CurvePlot
        >>> render_svg(CurvePlot("t", "trial (count)", "y", (), None, "")).startswith("<svg")
        True
    """
    if isinstance(data, CurvePlot):
        return draw_curves(data)
    if isinstance(data, ScatterPlot):
        return draw_scatter(data)
    if isinstance(data, CorrelationPlot):
        return draw_correlation(data)
    if isinstance(data, Heatmap):
        return draw_heatmap(data)
    raise TypeError(f"no renderer for {type(data).__name__}")
