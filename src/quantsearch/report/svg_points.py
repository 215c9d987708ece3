"""The report's point pictures as native SVG: every config in two metrics (the Pareto view) and
accuracy against loss with its rank correlations. Styles as :mod:`quantsearch.plots` draws them;
markers, because each point is an evaluated config."""

from __future__ import annotations

from collections.abc import Sequence

from quantsearch.report.figures import CorrelationPlot, ScatterPlot
from quantsearch.report.style import BLUE, GREY, VERMILLION, YELLOW
from quantsearch.report.svg_axes import data_limits, linear_axis, text_width
from quantsearch.report.svg_shapes import (
    FONT,
    PT,
    Element,
    Frame,
    Group,
    LegendEntry,
    Sample,
    axes_groups,
    el,
    group,
    layout,
    legend,
    marker,
    num,
    page,
    radius,
    text,
)

__all__ = ["draw_correlation", "draw_scatter"]


def _dot(color: str, r: float, **style: float | str) -> Sample:
    def draw(x: float, y: float) -> list[Element]:
        return [marker("circle", x, y, r, fill=color, **style)]

    return draw


def _points_plot(
    title: str,
    xlabel: str,
    ylabel: str,
    xs: Sequence[float],
    ys: Sequence[float],
    thousands: bool,
) -> tuple[Frame, list[Group], list[Group]]:
    w, h = 640.0, 400.0
    xlo, xhi = data_limits(xs)
    ylo, yhi = data_limits(ys)
    tick = FONT["tick"]
    f = layout(
        w,
        h,
        lambda n: linear_axis(xlo, xhi, n, tick, thousands=thousands),
        lambda n: linear_axis(ylo, yhi, n, tick, vertical=True),
        False,
    )
    under, over = axes_groups(f, w, h, title, xlabel, ylabel, "")
    return f, under, over


def _feasibility(
    f: Frame,
    groups: list[Group],
    feasible: Sequence[tuple[float, float]],
    infeasible: Sequence[tuple[float, float]],
    r: float,
    opacity: float,
    noun: str,
) -> list[LegendEntry]:
    """Feasible points filled blue, infeasible ones hollow grey, each group appended to
    ``groups`` with its legend entry (``"feasible config (n)"``; ``noun=""``: ``"feasible (n)"``).
    """
    label = f" {noun}" if noun else ""
    entries = []
    if feasible:
        groups.append(
            group(
                "points feasible",
                [marker("circle", f.px(x), f.py(y), r) for x, y in feasible],
                fill=BLUE,
                fill_opacity=opacity,
            )
        )
        entries.append(
            LegendEntry(f"feasible{label} ({len(feasible)})", _dot(BLUE, r, fill_opacity=opacity))
        )
    if infeasible:
        groups.append(
            group(
                "points infeasible",
                [marker("circle", f.px(x), f.py(y), r) for x, y in infeasible],
                fill="none",
                stroke=GREY,
                stroke_width=PT,
            )
        )
        entries.append(
            LegendEntry(
                f"infeasible{label} ({len(infeasible)})",
                _dot("none", r, stroke=GREY, stroke_width=PT),
            )
        )
    return entries


def draw_scatter(data: ScatterPlot) -> str:
    """Every config; infeasible hollow, the front highlighted and joined, the best starred, the
    float baseline marked."""
    pts = list(zip(data.x, data.y, data.feasible, data.on_front, data.best, strict=True))
    feas = [(x, y) for x, y, ok, on, _ in pts if ok and not on]
    infeas = [(x, y) for x, y, ok, _, _ in pts if not ok]
    front = sorted((x, y) for x, y, _, on, _ in pts if on)
    best = [(x, y) for x, y, _, _, b in pts if b]
    base = [data.baseline] if data.baseline is not None else []
    thousands = "bit" in data.xlabel or "BitOP" in data.xlabel
    f, groups, over = _points_plot(
        data.title,
        data.xlabel,
        data.ylabel,
        [*data.x, *(b[0] for b in base)],
        [*data.y, *(b[1] for b in base)],
        thousands,
    )
    small, size = radius(28), FONT["legend"] * 8 / 9
    entries = _feasibility(f, groups, feas, infeas, small, 0.7, "config")
    if front:
        line = "M" + "L".join(f"{num(f.px(x))} {num(f.py(y))}" for x, y in front)
        ring, dot = radius(150), radius(22)
        groups.append(
            group(
                "front-line",
                [el("path", d=line)] if len(set(front)) > 1 else [],  # one point: no line
                stroke=VERMILLION,
                fill="none",
                stroke_width=1.2 * PT,
                stroke_opacity=0.8,
            )
        )
        items = [
            marker(
                "circle",
                f.px(x),
                f.py(y),
                ring,
                fill="none",
                stroke=VERMILLION,
                stroke_width=2 * PT,
            )
            for x, y in front
        ]
        items += [marker("circle", f.px(x), f.py(y), dot, fill=VERMILLION) for x, y in front]
        groups.append(group("points front", items))

        def front_sample(x: float, y: float) -> list[Element]:
            return [
                marker(
                    "circle", x, y, ring * 0.7, fill="none", stroke=VERMILLION, stroke_width=2 * PT
                ),
                marker("circle", x, y, dot, fill=VERMILLION),
            ]

        entries.append(LegendEntry(f"front: non-dominated feasible ({len(front)})", front_sample))
    star: dict[str, float | str] = {"fill": YELLOW, "stroke": "#000000", "stroke_width": 0.6 * PT}
    if best:
        groups.append(
            group(
                "points best",
                [marker("star", f.px(x), f.py(y), radius(70) * 1.3, **star) for x, y in best],
            )
        )
        entries.append(
            LegendEntry(
                "best objective", lambda x, y: [marker("star", x, y, radius(70) * 1.3, **star)]
            )
        )
    cross: dict[str, float | str] = {"stroke": "#000000", "stroke_width": 2.2 * PT, "fill": "none"}
    if base:
        bx, by = base[0]
        groups.append(
            group("points baseline", [marker("x", f.px(bx), f.py(by), radius(90), **cross)])
        )
        entries.append(
            LegendEntry("float baseline", lambda x, y: [marker("x", x, y, radius(90), **cross)])
        )
    groups += over
    if entries:
        where = [(f.px(x), f.py(y)) for x, y in [*zip(data.x, data.y, strict=True), *base]]
        groups.append(legend(f, entries, size, points=where))
    return page(data.title, 640.0, 400.0, groups)


def draw_correlation(data: CorrelationPlot) -> str:
    """Accuracy against loss, the rank correlations written in the upper right corner."""
    ok = [(x, y) for x, y, g in zip(data.x, data.y, data.feasible, strict=True) if g]
    bad = [(x, y) for x, y, g in zip(data.x, data.y, data.feasible, strict=True) if not g]
    f, groups, over = _points_plot(data.title, data.xlabel, data.ylabel, data.x, data.y, False)
    r, size = radius(30), FONT["legend"] * 8 / 9
    entries = _feasibility(f, groups, ok, bad, r, 0.75, "")
    lines = [
        f"Spearman ρ = {data.spearman:.3f} (p = {data.spearman_p:.2g})",
        f"Kendall τ = {data.kendall:.3f} (p = {data.kendall_p:.2g})",
        f"n = {len(data.x)} configs",
    ]
    fs = FONT["legend"]
    bw = max(text_width(t, fs) for t in lines) + fs
    bh = fs * 1.3 * len(lines) + fs * 0.7
    bx, by = f.left + f.width * 0.97 - bw, f.top + f.height * 0.03
    box = [
        el(
            "rect",
            x=bx,
            y=by,
            width=bw,
            height=bh,
            rx=4,
            fill="#ffffff",
            fill_opacity=0.9,
            stroke="#b3b3b3",
            stroke_width=PT,
        )
    ]
    box += [
        text(bx + bw - fs / 2, by + fs * (0.35 + 1.3 * (i + 0.5)), t, fs, "end")
        for i, t in enumerate(lines)
    ]
    groups += [*over, group("statistics", box)]
    if entries:
        groups.append(legend(f, entries, size, ("lower left",)))
    return page(data.title, 640.0, 400.0, groups)
