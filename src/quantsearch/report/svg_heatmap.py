"""The front's per-layer bitwidths as a native SVG heatmap: configs by rows, node roles by
columns, bits per element in colour (viridis, readable in grey and to colour-blind readers) and
written in each cell, with a colour bar."""

from __future__ import annotations

import math

from quantsearch.report.figures import Heatmap
from quantsearch.report.svg_axes import linear_axis, text_width
from quantsearch.report.svg_shapes import (
    FONT,
    PT,
    Group,
    el,
    finite,
    group,
    num,
    page,
    text,
)

__all__ = ["VIRIDIS", "draw_heatmap", "viridis"]

# viridis at 33 evenly spaced points, read from matplotlib's colormap; linear in between
VIRIDIS = (
    "#440154",
    "#470d60",
    "#48186a",
    "#482374",
    "#472d7b",
    "#453781",
    "#424086",
    "#3e4989",
    "#3b528b",
    "#375b8d",
    "#33638d",
    "#2f6b8e",
    "#2c728e",
    "#297a8e",
    "#26828e",
    "#23898e",
    "#21918c",
    "#1f988b",
    "#1fa088",
    "#22a785",
    "#28ae80",
    "#32b67a",
    "#3fbc73",
    "#4ec36b",
    "#5ec962",
    "#70cf57",
    "#84d44b",
    "#98d83e",
    "#addc30",
    "#c2df23",
    "#d8e219",
    "#ece51b",
    "#fde725",
)


def viridis(t: float) -> str:
    """The viridis colour at ``t`` in [0, 1], as ``#rrggbb``.

    Example:
        >>> viridis(0.0), viridis(1.0)
        ('#440154', '#fde725')
    """
    p = min(max(t, 0.0), 1.0) * (len(VIRIDIS) - 1)
    i = min(int(p), len(VIRIDIS) - 2)
    a, b = VIRIDIS[i], VIRIDIS[i + 1]
    rgb = (
        round(int(a[k : k + 2], 16) + (int(b[k : k + 2], 16) - int(a[k : k + 2], 16)) * (p - i))
        for k in (1, 3, 5)
    )
    return "#" + "".join(f"{c:02x}" for c in rgb)


def draw_heatmap(data: Heatmap) -> str:
    """Configs by rows, node roles by columns, bits per element in colour (viridis) and in
    each cell; a colour bar on the right."""
    rows, cols = len(data.row_labels), len(data.col_labels)
    small = 8 * PT
    known = finite([v for row in data.values for v in row])
    lo, hi = (min(known), max(known)) if known else (0.0, 1.0)
    top = 18 + FONT["title"] * 1.6
    left = (
        10
        + FONT["label"] * 1.5
        + max((text_width(t, small) for t in data.row_labels), default=0.0)
        + 8
    )
    slant = math.sin(math.radians(40))
    bottom = 10 + max((text_width(t, small) for t in data.col_labels), default=0.0) * slant
    bottom += small + FONT["label"] * 1.6 + 6
    bar = 110.0  # the colour bar, its ticks and its label
    w = max(min(12.0, max(6.0, 0.8 * cols + 3.0)) * 100, left + bar + 36 * cols)
    h = max(max(2.8, 0.4 * rows + 2.2) * 100, top + bottom + 24 * rows)
    cw, ch = (w - left - bar) / cols, (h - top - bottom) / rows
    cells, words = [], []
    for i, row in enumerate(data.values):
        for j, v in enumerate(row):
            if not math.isfinite(v):
                continue
            t = 0.0 if hi == lo else (v - lo) / (hi - lo)
            x, y = left + j * cw, top + i * ch
            cells.append(el("rect", x=x, y=y, width=cw, height=ch, fill=viridis(t)))
            dark = hi == lo or t < 0.55
            words.append(
                text(
                    x + cw / 2,
                    y + ch / 2,
                    data.cells[i][j] or f"{v:g}",
                    7 * PT,
                    fill="#ffffff" if dark else "#000000",
                )
            )
    bottom_y = top + ch * rows
    xt = [
        el(
            "path",
            d=f"M{num(left + (j + 0.5) * cw)} {num(bottom_y)}v{num(3.5 * PT)}",
            stroke="#000000",
        )
        for j in range(cols)
    ]
    for j, label in enumerate(data.col_labels):
        x, y = left + (j + 0.5) * cw, bottom_y + 3.5 * PT + 4 + small * 0.7
        xt.append(
            el(
                "text",
                label,
                x=x,
                y=y,
                font_size=small,
                text_anchor="end",
                transform=f"rotate(-40 {num(x)} {num(y)})",
            )
        )
    yt = []
    for i, label in enumerate(data.row_labels):
        y = top + (i + 0.5) * ch
        yt += [
            el("path", d=f"M{num(left)} {num(y)}h{num(-3.5 * PT)}", stroke="#000000"),
            text(left - 3.5 * PT - 3, y, label, small, "end"),
        ]
    ylx, mid = 10 + FONT["label"] * 0.6, top + ch * rows / 2
    over = [
        group(
            "frame",
            [el("rect", x=left, y=top, width=cw * cols, height=ch * rows)],
            fill="none",
            stroke="#000000",
            stroke_width=0.8 * PT,
        ),
        group("xtick", xt, stroke_width=0.8 * PT),
        group("ytick", yt, stroke_width=0.8 * PT),
        group("title", [text(w / 2, 18 + FONT["title"] * 0.5, data.title, FONT["title"])]),
        group(
            "xlabel", [text(left + cw * cols / 2, h - FONT["label"], "node.role", FONT["label"])]
        ),
        group(
            "ylabel",
            [
                text(
                    ylx,
                    mid,
                    "config",
                    FONT["label"],
                    transform=f"rotate(-90 {num(ylx)} {num(mid)})",
                )
            ],
        ),
    ]
    groups = [
        group("cells", cells, shape_rendering="crispEdges"),  # no seams between cells
        group("cell-text", words),
        *over,
        _colorbar(left + cw * cols + 16, top, ch * rows, lo, hi, data.colorbar),
    ]
    return page(data.title, w, h, groups)


def _colorbar(x: float, y: float, height: float, lo: float, hi: float, label: str) -> Group:
    """A vertical viridis bar from ``lo`` (bottom) to ``hi`` with ticks and ``label``."""
    width, n, tick = 16.0, 64, FONT["tick"]
    items = [
        el(
            "rect",
            x=x,
            y=y + height * (1 - (k + 1) / n),
            width=width,
            height=height / n + 0.5,
            fill=viridis((k + 0.5) / n),
        )
        for k in range(n)
    ]
    items.append(
        el(
            "rect",
            x=x,
            y=y,
            width=width,
            height=height,
            fill="none",
            stroke="#000000",
            stroke_width=0.8 * PT,
        )
    )
    a, b = (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)
    axis = linear_axis(a, b, height, tick, vertical=True)
    widest = 0.0
    for t, words in zip(axis.ticks, axis.labels, strict=True):
        ty = y + height * (1 - axis.scale.frac(t))
        items += [
            el(
                "path",
                d=f"M{num(x + width)} {num(ty)}h{num(3.5 * PT)}",
                stroke="#000000",
                stroke_width=0.8 * PT,
            ),
            text(x + width + 3.5 * PT + 3, ty, words, tick, "start"),
        ]
        widest = max(widest, text_width(words, tick))
    lx, ly = x + width + 3.5 * PT + 8 + widest + FONT["label"] * 0.6, y + height / 2
    items.append(text(lx, ly, label, FONT["label"], transform=f"rotate(-90 {num(lx)} {num(ly)})"))
    return group("colorbar", items)
