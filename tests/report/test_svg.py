"""The native SVG figures: well-formed, the same bytes for the same data, data points where the
axis mapping puts them, matplotlib's ticks and symmetric-log transform (the referees:
``matplotlib.ticker.MaxNLocator``, a matplotlib ``Axes``' own ticks,
``matplotlib.scale.SymmetricalLogTransform``, ``matplotlib.colormaps["viridis"]``), legends
that name the series, escaped text, and no matplotlib, numpy nor torch import."""

from __future__ import annotations

import itertools
import math
import random
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from matplotlib import colormaps
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.scale import SymmetricalLogTransform
from matplotlib.ticker import MaxNLocator

from quantsearch.compare import Curve
from quantsearch.report import CorrelationPlot, CurvePlot, Heatmap, ScatterPlot
from quantsearch.report.style import LINESTYLES, OKABE_ITO
from quantsearch.report.svg import dasharray, render_svg
from quantsearch.report.svg_axes import max_n_ticks, symlog, tick_labels
from quantsearch.report.svg_heatmap import viridis

NS = "{http://www.w3.org/2000/svg}"
EVIL = '<b>&"'
SHORT = Curve((1, 2, 3, 4, 5), (0.05, 0.01, 0.002, 0.0, 0.0), (0.02, 0.005, 0.0, 0.0, 0.0),
              (0.08, 0.02, 0.004, 0.001, 0.0), (3,) * 5)  # fmt: skip
GAPPED = Curve((1, 2, 3, 4), (-math.inf, 0.5, 0.8, 0.9), (-math.inf, 0.4, 0.7, 0.9),
               (-math.inf, 0.6, 0.9, 0.9), (3, 3, 3, 3))  # fmt: skip
SCATTER = ScatterPlot("All configs", "model size (bit)", "accuracy (fraction)",
                      (12_000.0, 20_000.0, 31_000.0, 25_000.0), (0.7, 0.9, 0.95, 0.6),
                      (False, True, True, True), (False, True, True, False),
                      (False, False, True, False), (40_000.0, 0.96))  # fmt: skip
CORRELATION = CorrelationPlot("acc vs loss", "loss (nat)", "accuracy (fraction)",
                              (0.1, 0.2, 0.9, 0.5), (0.98, 0.97, 0.7, 0.8),
                              (True, True, False, True), -0.8, 0.01, -0.67, 0.05)  # fmt: skip
HEATMAP = Heatmap("bits", ("c1", EVIL), ("fc1.weight", "fc1.data_in", "fc2.weight"),
                  ((8.0, 8.0, 4.0), (4.0, math.nan, 16.0)),
                  (("fixed(8,4)", "", ""), ("", "", "")), "bits per element")  # fmt: skip


def regret(labels: tuple[str, ...] = ("tpe", "random")) -> CurvePlot:
    return CurvePlot("Regret", "trial (count)", "simple regret",
                     tuple((label, SHORT) for label in labels), 0.0, "0: the optimum", 1e-3,
                     "HV reference point: (−accuracy) = (-0.5)")  # fmt: skip


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def group(root: ET.Element, cls: str) -> ET.Element:
    found = [g for g in root.iter(f"{NS}g") if g.get("class") == cls]
    assert len(found) == 1, cls
    return found[0]


def texts(element: ET.Element) -> list[str]:
    return [t.text or "" for t in element.iter(f"{NS}text")]


def frame(root: ET.Element) -> tuple[float, float, float, float]:
    rect = group(root, "frame").find(f"{NS}rect")
    assert rect is not None
    return tuple(float(rect.get(k, "nan")) for k in ("x", "y", "width", "height"))  # type: ignore[return-value]


def padded(values: list[float]) -> tuple[float, float]:
    """matplotlib's default view limits: the data range and 5% of it on each side."""
    lo, hi = min(values), max(values)
    return lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)


ALL = [regret(), CurvePlot("Best", "trial (count)", "y", (("a", GAPPED),), 0.95, "optimum"),
       SCATTER, CORRELATION, HEATMAP]  # fmt: skip


@pytest.mark.parametrize("data", ALL, ids=lambda d: type(d).__name__)
def test_well_formed_scalable_and_the_same_bytes_for_the_same_data(data: object) -> None:
    svg = render_svg(data)
    root = parse(svg)
    width, height = float(root.get("width", "0")), float(root.get("height", "0"))
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert 400 <= width <= 1300 and 250 <= height <= 900
    assert render_svg(data) == svg
    # inline in one HTML page beside the others: no ids to clash, nothing fetched
    assert " id=" not in svg and "href" not in svg
    title = root.find(f"{NS}title")
    assert title is not None and title.text == getattr(data, "title", None)


def test_ticks_are_matplotlibs_max_n_locator_over_many_spans() -> None:
    rng = random.Random(0)
    for _ in range(3000):
        lo = rng.uniform(-1, 1) * 10 ** rng.uniform(-6, 7)
        hi = lo + 10 ** rng.uniform(-5, 7)
        nbins, integer = rng.randint(1, 9), rng.random() < 0.3
        locator = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10], integer=integer)
        span = hi - lo
        expected = [
            t for t in locator.tick_values(lo, hi) if lo - span * 1e-9 <= t <= hi + span * 1e-9
        ]
        assert max_n_ticks(lo, hi, nbins, integer=integer) == expected, (lo, hi, nbins)


@pytest.mark.parametrize("lo,hi", [(0.0, 1.0), (0.93, 0.975), (-3.2, 17.0), (1e4, 2.3e5),
                                   (0.0028, 0.0091), (1.0, 5.0)])  # fmt: skip
def test_ticks_equal_a_matplotlib_axes_own(lo: float, hi: float) -> None:
    ax = Figure().add_subplot()  # matplotlib's AutoLocator, nbins "auto": 9 on this axes
    ax.set_xlim(lo, hi)
    slack = (hi - lo) * 1e-10  # the axis shows a tick within rounding of its ends
    assert max_n_ticks(lo, hi, 9) == [t for t in ax.get_xticks() if lo - slack <= t <= hi + slack]


def test_tick_labels_read_back_as_their_ticks() -> None:
    rng = random.Random(1)
    for _ in range(2000):
        lo = rng.uniform(-1, 1) * 10 ** rng.uniform(-8, 6)
        hi = lo + 10 ** rng.uniform(-8, 6)
        ticks = max_n_ticks(lo, hi, rng.randint(2, 9))
        labels = tick_labels(ticks)
        assert len(set(labels)) == len(labels), labels  # distinct
        step = min(b - a for a, b in itertools.pairwise(ticks)) if len(ticks) > 1 else 1.0
        for t, label in zip(ticks, labels, strict=True):
            assert abs(float(label) - t) <= step * 1e-6, (t, label)
            # short, unless the span is tiny beside the values (matplotlib writes an offset)
            assert len(label) <= 12 or step < 1e-4 * max(abs(x) for x in ticks), (t, label)
        # one number of decimals for all, as matplotlib's ScalarFormatter writes them
        if "e" not in "".join(labels):
            assert len({len(x.partition(".")[2]) for x in labels if x != "0"}) <= 1, labels


def test_points_land_where_the_axis_maps_them() -> None:
    for data in (SCATTER, CORRELATION):
        root = parse(render_svg(data))
        left, top, width, height = frame(root)
        xs = [*data.x, *([data.baseline[0]] if getattr(data, "baseline", None) else [])]
        ys = [*data.y, *([data.baseline[1]] if getattr(data, "baseline", None) else [])]
        (x0, x1), (y0, y1) = padded(xs), padded(ys)
        circles = [
            (float(c.get("cx", "nan")), float(c.get("cy", "nan")))
            for c in group(root, "points feasible").iter(f"{NS}circle")
        ]
        chosen = [i for i, f in enumerate(data.feasible) if f]
        if isinstance(data, ScatterPlot):
            chosen = [i for i in chosen if not data.on_front[i]]
        assert len(circles) == len(chosen)
        for (cx, cy), i in zip(circles, chosen, strict=True):
            # the SVG writes two decimals: the frame read back and the point each within 0.005
            assert cx == pytest.approx(left + (data.x[i] - x0) / (x1 - x0) * width, abs=0.02)
            assert cy == pytest.approx(top + (y1 - data.y[i]) / (y1 - y0) * height, abs=0.02)


def test_symlog_axis_maps_as_matplotlibs_symmetrical_log_transform() -> None:
    referee = SymmetricalLogTransform(10, 1e-3, 0.5)
    values = [0.0, 1e-5, -1e-5, 5e-4, 1e-3, -1e-3, 2.8e-3, 0.05, -0.05, 1.0, 37.0]
    expected = referee.transform(values)
    assert [symlog(v, 1e-3) for v in values] == pytest.approx(list(expected), rel=1e-12)
    data = regret(("tpe",))
    root = parse(render_svg(data))
    _, top, _, height = frame(root)
    lo, hi = -0.25e-3, max(*SHORT.median, *SHORT.q3) * 1.6  # plots.py's limits
    t_lo, t_hi = referee.transform([lo, hi])

    def row(v: float) -> float:
        return top + (t_hi - referee.transform([v])[0]) / (t_hi - t_lo) * height

    # the median's step line: one vertex per trial, at the transformed median's row
    path = group(root, "series").find(f"{NS}path")
    assert path is not None
    vertices = re.findall(r"[ML](-?[\d.]+) (-?[\d.]+)", path.get("d", ""))
    assert len(vertices) == len(SHORT.median)
    for (_, y), v in zip(vertices, SHORT.median, strict=True):
        assert float(y) == pytest.approx(row(v), abs=0.02)
    # zero is on the axis, above its lower edge, and labelled 0; decades above it
    ticks = group(root, "ytick")
    labels = texts(ticks)
    assert labels[0] == "0" and {"0.001", "0.01"} <= set(labels)
    zero = next(float(t.get("y", "nan")) for t in ticks.iter(f"{NS}text") if t.text == "0")
    assert top < zero - 0.35 * 12.5 < top + height
    assert zero - 0.35 * 12.5 == pytest.approx(row(0.0), abs=0.01)
    # minor ticks at 2-9 times each decade, on the logarithmic part only
    marks = [p.get("d", "") for p in ticks.iter(f"{NS}path")]
    minor = [m * 10.0**k for k in (-3, -2, -1) for m in range(2, 10) if 1e-3 < m * 10.0**k <= hi]
    assert len(marks) == len(labels) + len(minor)
    rows = sorted(float(re.findall(r"-?[\d.]+", d)[1]) for d in marks[: len(minor)])
    assert rows == pytest.approx(sorted(row(v) for v in minor), abs=0.02)


def test_count_axes_get_integer_ticks_and_bit_axes_thousands_separators() -> None:
    root = parse(render_svg(regret()))
    labels = texts(group(root, "xtick"))
    assert len(labels) >= 3 and all(re.fullmatch(r"\d+", t) for t in labels), labels
    bits = texts(group(parse(render_svg(SCATTER)), "xtick"))
    assert any("," in t for t in bits) and all(re.fullmatch(r"\d{1,3}(,\d{3})*", t) for t in bits)
    loss = texts(group(parse(render_svg(CORRELATION)), "xtick"))
    assert loss == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"]


def test_legend_entries_are_the_series() -> None:
    names = ("tpe", "random", "brute_force", "nsga2", "qmc")
    legend = group(parse(render_svg(regret(names))), "legend")
    assert sorted(texts(legend)) == sorted([*names, "0: the optimum"])
    scatter = texts(group(parse(render_svg(SCATTER)), "legend"))
    assert scatter == ["feasible config (1)", "infeasible config (1)",
                       "front: non-dominated feasible (2)", "best objective", "float baseline"]  # fmt: skip


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_strategy_lines_differ_in_colour_and_dash_without_markers(n: int) -> None:
    names = ["brute_force", "tpe", "random", "nsga2", "nsga3", "qmc", "local", "sensitivity"][:n]
    root = parse(render_svg(regret(tuple(names))))
    lines = list(group(root, "series").iter(f"{NS}path"))
    styles = [(p.get("stroke"), p.get("stroke-dasharray")) for p in lines]
    assert len(set(styles)) == n
    assert len({c for c, _ in styles}) == min(n, len(OKABE_ITO))
    assert len({d for _, d in styles}) == min(n, len(LINESTYLES))
    assert {c for c, _ in styles} <= set(OKABE_ITO)
    assert not list(root.iter(f"{NS}circle")) and not list(root.iter(f"{NS}polygon"))
    # solid first (lowest), then thinner dashes above it
    widths = [float(p.get("stroke-width", "0")) for p in lines]
    assert widths == sorted(widths, reverse=True)
    assert dasharray("--", 2.0) == "7.4 3.2" and dasharray("-", 2.0) is None


def test_the_hypervolume_note_is_on_the_picture() -> None:
    assert texts(group(parse(render_svg(regret())), "note")) == [regret().note]


def test_every_text_from_data_is_escaped() -> None:
    data = CurvePlot(EVIL, EVIL, EVIL, ((EVIL, SHORT),), 0.0, EVIL, 1e-3, EVIL)
    svg = render_svg(data)
    assert "<b>" not in svg and "&lt;b&gt;&amp;&#34;" in svg
    root = parse(svg)
    assert texts(root).count(EVIL) == 6  # title, both axis labels, note, two legend entries
    assert EVIL in texts(parse(render_svg(HEATMAP)))
    assert root.get("aria-label") == EVIL


def test_viridis_is_matplotlibs() -> None:
    cmap = colormaps["viridis"]
    for k in range(101):
        ours = viridis(k / 100)
        theirs = to_rgb(cmap(k / 100))
        got = [int(ours[i : i + 2], 16) for i in (1, 3, 5)]
        assert max(abs(a - round(b * 255)) for a, b in zip(got, theirs, strict=True)) <= 3, k


def test_heatmap_cells_and_their_text() -> None:
    root = parse(render_svg(HEATMAP))
    cells = list(group(root, "cells").iter(f"{NS}rect"))
    assert len(cells) == 5  # the not-quantized role is left blank
    assert texts(group(root, "cell-text")) == ["fixed(8,4)", "8", "4", "4", "16"]
    assert texts(group(root, "ytick")) == list(HEATMAP.row_labels)
    assert texts(group(root, "xtick")) == list(HEATMAP.col_labels)


@pytest.mark.slow
def test_drawing_imports_no_matplotlib_numpy_nor_torch() -> None:
    built = "[" + ", ".join(repr(d).replace("inf", "math.inf").replace("nan", "math.nan")
                            for d in ALL) + "]"  # fmt: skip
    code = (
        "import math, sys\n"
        "from quantsearch.compare.stats import Curve\n"
        "from quantsearch.report.figures import *\n"
        "from quantsearch.report.svg import render_svg\n"
        f"for d in {built}: render_svg(d)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'numpy', 'torch'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
