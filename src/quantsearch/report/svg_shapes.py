"""The pieces of a native SVG figure: elements, the axes box with its ticks and labels, markers
and legends, in pixels of a canvas 100 px to the inch (matplotlib's figure sizes, so a picture
has the same proportions in SVG and PNG).

An :class:`Element` is a tag, its attributes and its text, as values: the template
``templates/figure.svg`` writes them, escaping every attribute and every text (Jinja2
autoescape), so a label such as ``<b>&"`` is shown, never interpreted. Numbers are written with
at most two decimals, so the same data gives the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from quantsearch.report.svg_axes import Axis, text_width

__all__ = [
    "CORNERS",
    "FONT",
    "Element",
    "Frame",
    "Group",
    "LegendEntry",
    "Sample",
    "axes_groups",
    "el",
    "finite",
    "group",
    "layout",
    "legend",
    "marker",
    "num",
    "page",
    "radius",
    "text",
]

PT = 100 / 72  # px per point: matplotlib's sizes are in points
FONT = {"title": 11 * PT, "label": 10 * PT, "tick": 9 * PT, "legend": 9 * PT, "note": 8 * PT}
TICK_LEN = 3.5 * PT  # matplotlib's major tick length
AXIS_WIDTH = 0.8 * PT
GRID = "#b0b0b0"
TEMPLATE = Path(__file__).parent / "templates" / "figure.svg"
_ENV = Environment(
    loader=FileSystemLoader(TEMPLATE.parent),
    autoescape=True,  # every attribute and text from data: shown, never interpreted
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=StrictUndefined,
)


def num(v: float) -> str:
    """A coordinate or size as written: at most two decimals, no ``-0``.

    Example:
        >>> num(1.0), num(2.345), num(-0.001)
        ('1', '2.35', '0')
    """
    text = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


@dataclass(frozen=True)
class Element:
    """One SVG element: ``<tag attr="value" ...>text</tag>``, escaped by the template."""

    tag: str
    attrs: tuple[tuple[str, str], ...]
    text: str = ""


@dataclass(frozen=True)
class Group:
    """A ``<g class="...">`` of elements: one kind of thing (points, ticks, legend ...), with
    the presentation attributes its elements share."""

    cls: str
    items: tuple[Element, ...]
    attrs: tuple[tuple[str, str], ...] = ()


def group(cls: str, items: Sequence[Element], **attrs: float | str | None) -> Group:
    """A group; its attributes written as :func:`el` writes them."""
    return Group(cls, tuple(items), el("g", **attrs).attrs)


def el(tag: str, text: str = "", /, **attrs: float | str | None) -> Element:
    """An element; numbers written by :func:`num`, ``None`` left out, ``_`` in a name as ``-``.

    Example:
        >>> el("circle", cx=1.0, cy=2.5, r=3, fill=None).attrs
        (('cx', '1'), ('cy', '2.5'), ('r', '3'))
    """
    pairs = tuple(
        (k.rstrip("_").replace("_", "-"), num(v) if isinstance(v, int | float) else v)
        for k, v in attrs.items()
        if v is not None
    )
    return Element(tag, pairs, text)


def text(
    x: float, y: float, words: str, size: float, anchor: str = "middle", **attrs: float | str
) -> Element:
    """Text whose middle (vertically) is at ``y``."""
    return el("text", words, x=x, y=y + 0.35 * size, font_size=size, text_anchor=anchor, **attrs)


@dataclass(frozen=True)
class Frame:
    """The axes box on the canvas and its two axes: data to pixels."""

    left: float
    top: float
    width: float
    height: float
    x: Axis
    y: Axis

    def px(self, v: float) -> float:
        """The pixel column of the data value ``v``."""
        return self.left + self.x.scale.frac(v) * self.width

    def py(self, v: float) -> float:
        """The pixel row of the data value ``v`` (rows grow downwards)."""
        return self.top + (1 - self.y.scale.frac(v)) * self.height


def layout(
    width: float,
    height: float,
    x_of: Callable[[float], Axis],
    y_of: Callable[[float], Axis],
    note: bool,
) -> Frame:
    """The axes box of a ``width`` x ``height`` canvas with room for the title, the tick labels,
    both axis labels and (``note``) a line under them; ``x_of`` and ``y_of`` build each axis
    for its length in pixels (the number of ticks depends on it)."""
    top = 18 + FONT["title"] * 1.6
    bottom = TICK_LEN + 4 + FONT["tick"] * 1.4 + FONT["label"] * 1.6 + 6
    bottom += FONT["note"] * 1.8 if note else 0.0
    y = y_of(height - top - bottom)
    left = 10 + FONT["label"] * 1.5 + max(text_width(t, FONT["tick"]) for t in y.labels or ("",))
    left += TICK_LEN + 6
    x = x_of(width - left - 24)
    right = max(24.0, 6 + text_width(x.labels[-1], FONT["tick"]) / 2) if x.labels else 24.0
    x = x_of(width - left - right)
    return Frame(left, top, width - left - right, height - top - bottom, x, y)


def axes_groups(
    f: Frame, width: float, height: float, title: str, xlabel: str, ylabel: str, note: str
) -> tuple[list[Group], list[Group]]:
    """(under the data: grid; over the data: frame, ticks, labels, title, note)."""
    right, bottom = f.left + f.width, f.top + f.height
    grid = [el("path", d=f"M{num(f.px(t))} {num(f.top)}V{num(bottom)}") for t in f.x.ticks]
    grid += [el("path", d=f"M{num(f.left)} {num(f.py(t))}H{num(right)}") for t in f.y.ticks]
    under = [
        group("grid", grid, stroke=GRID, stroke_opacity=0.3, stroke_width=0.8 * PT, fill="none")
    ]
    size, gap = FONT["tick"], TICK_LEN + 3
    xticks: list[Element] = []
    for t, label in zip(f.x.ticks, f.x.labels, strict=True):
        x = f.px(t)
        xticks += [
            el("path", d=f"M{num(x)} {num(bottom)}v{num(TICK_LEN)}", stroke="#000000"),
            text(x, bottom + gap + 0.6 * size, label, size),
        ]
    yticks: list[Element] = []
    for t in f.y.minor:
        yticks.append(
            el(
                "path",
                d=f"M{num(f.left)} {num(f.py(t))}h{num(-0.6 * TICK_LEN)}",
                stroke="#000000",
                stroke_width=0.6 * PT,
            )
        )
    for t, label in zip(f.y.ticks, f.y.labels, strict=True):
        y = f.py(t)
        yticks += [
            el("path", d=f"M{num(f.left)} {num(y)}h{num(-TICK_LEN)}", stroke="#000000"),
            text(f.left - gap, y, label, size, "end"),
        ]
    ylab_x = 10 + FONT["label"] * 0.6
    ymid = f.top + f.height / 2
    over = [
        group(
            "frame",
            [el("rect", x=f.left, y=f.top, width=f.width, height=f.height)],
            fill="none",
            stroke="#000000",
            stroke_width=AXIS_WIDTH,
        ),
        group("xtick", xticks, stroke_width=AXIS_WIDTH),
        group("ytick", yticks, stroke_width=AXIS_WIDTH),
        Group("title", (text(width / 2, 18 + FONT["title"] * 0.5, title, FONT["title"]),)),
        Group(
            "xlabel",
            (
                text(
                    f.left + f.width / 2,
                    bottom + gap + size * 1.4 + FONT["label"] * 0.7,
                    xlabel,
                    FONT["label"],
                ),
            ),
        ),
        Group(
            "ylabel",
            (
                text(
                    ylab_x,
                    ymid,
                    ylabel,
                    FONT["label"],
                    transform=f"rotate(-90 {num(ylab_x)} {num(ymid)})",
                ),
            ),
        ),
    ]
    if note:
        over.append(Group("note", (text(width / 2, height - FONT["note"], note, FONT["note"]),)))
    return under, over


def marker(kind: str, x: float, y: float, r: float, **style: float | str) -> Element:
    """A marker of radius ``r`` at (x, y): ``circle``, ``star`` (five points) or ``x`` (a
    bold cross)."""
    if kind == "circle":
        return el("circle", cx=x, cy=y, r=r, **style)
    if kind == "star":
        pts = []
        for i in range(10):
            a = math.pi / 2 + i * math.pi / 5
            rad = r if i % 2 == 0 else r * 0.382
            pts.append(f"{num(x + rad * math.cos(a))},{num(y - rad * math.sin(a))}")
        return el("polygon", points=" ".join(pts), **style)
    d = r * 0.75
    return el(
        "path",
        d=f"M{num(x - d)} {num(y - d)}L{num(x + d)} {num(y + d)}"
        f"M{num(x - d)} {num(y + d)}L{num(x + d)} {num(y - d)}",
        **style,
    )


Sample = Callable[[float, float], Sequence[Element]]  # a legend sample drawn centred at (x, y)


@dataclass(frozen=True)
class LegendEntry:
    """A legend row: its label and how to draw its sample."""

    label: str
    sample: Sample


CORNERS = ("upper right", "upper left", "lower left", "lower right")


def legend(
    f: Frame,
    entries: Sequence[LegendEntry],
    size: float,
    corners: Sequence[str] = CORNERS,
    points: Sequence[tuple[float, float]] = (),
) -> Group:
    """A framed legend inside the axes, in the first of ``corners`` whose box covers the fewest
    of ``points`` (pixels): matplotlib's ``loc="best"`` with one corner, its fixed ``loc``."""
    row, pad, sample_w = size * 1.45, 0.5 * size, 2.2 * size
    w = pad * 3 + sample_w + max((text_width(e.label, size) for e in entries), default=0.0)
    h = pad * 2 + row * len(entries)

    def origin(corner: str) -> tuple[float, float]:
        x = f.left + 8 if "left" in corner else f.left + f.width - 8 - w
        y = f.top + 8 if "upper" in corner else f.top + f.height - 8 - h
        return x, y

    def covered(corner: str) -> int:
        x, y = origin(corner)
        return sum(1 for px, py in points if x <= px <= x + w and y <= py <= y + h)

    x0, y0 = origin(min(corners, key=lambda c: (covered(c), corners.index(c))))
    items: list[Element] = [
        el(
            "rect",
            x=x0,
            y=y0,
            width=w,
            height=h,
            rx=3,
            fill="#ffffff",
            fill_opacity=0.8,
            stroke="#cccccc",
            stroke_width=0.8 * PT,
        )
    ]
    for i, e in enumerate(entries):
        cy = y0 + pad + row * (i + 0.5)
        items += e.sample(x0 + pad + sample_w / 2, cy)
        items.append(text(x0 + pad * 2 + sample_w, cy, e.label, size, "start", class_="label"))
    return group("legend", items)


def page(title: str, width: float, height: float, groups: Sequence[Group]) -> str:
    """The SVG document: a ``width`` x ``height`` canvas (and viewBox, so it scales) holding
    ``groups`` in order, its ``title`` for screen readers."""
    return _ENV.get_template(TEMPLATE.name).render(
        title=title, width=num(width), height=num(height), groups=groups
    )


def finite(values: Sequence[float]) -> list[float]:
    """The finite ``values`` (infinite ones are gaps: no feasible config yet)."""
    return [v for v in values if math.isfinite(v)]


def radius(s: float) -> float:
    """matplotlib's marker size ``s`` (area in pt²) as a radius in px."""
    return math.sqrt(s) / 2 * PT
