"""Each renderer writes a PNG that opens, with sensible dimensions and size, and valid SVG and
PDF; the style for papers is read back from matplotlib's own objects (the referee): integer
ticks on count axes, no markers on curves, a symmetric-log regret axis that shows zero,
distinct (colour, line style) per strategy, the hypervolume reference point stated."""

from __future__ import annotations

import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from quantsearch import plots
from quantsearch.compare import Curve
from quantsearch.report import (
    CorrelationPlot,
    CurvePlot,
    Heatmap,
    ScatterPlot,
    build_report,
    write_report,
)
from tests.compare.fixtures import compare_dir, lab, lab_comparison  # noqa: F401  (fixtures)


def check_png(path: Path) -> Image.Image:
    img = Image.open(path)
    img.load()
    assert img.format == "PNG"
    assert 400 <= img.width <= 2500 and 250 <= img.height <= 1600, img.size
    assert path.stat().st_size < 300_000
    # not blank: more than a handful of distinct colours
    assert len(img.convert("RGB").getcolors(maxcolors=1 << 16) or [0] * 99) > 10
    return img


CURVE = Curve((1, 2, 3, 4), (-math.inf, 0.5, 0.8, 0.9), (-math.inf, 0.4, 0.7, 0.9),
              (-math.inf, 0.6, 0.9, 0.9), (3, 3, 3, 3))  # fmt: skip


def test_curves_with_gaps(tmp_path: Path) -> None:
    data = CurvePlot("Best so far", "trial (count)", "objective", (("a", CURVE), ("b", CURVE)),
                     0.95, "true optimum")  # fmt: skip
    check_png(plots.render(data, tmp_path / "c.png"))


def test_scatter(tmp_path: Path) -> None:
    data = ScatterPlot("All configs", "model size (bit)", "accuracy (fraction)",
                       (1e4, 2e4, 3e4), (0.7, 0.9, 0.95), (False, True, True),
                       (False, True, True), (False, False, True), (2e5, 0.96))  # fmt: skip
    check_png(plots.render(data, tmp_path / "s.png"))


def test_correlation(tmp_path: Path) -> None:
    data = CorrelationPlot("acc vs loss", "loss (nat)", "accuracy (fraction)", (0.1, 0.2, 0.9),
                           (0.98, 0.97, 0.7), (True, True, False), -1.0, 0.0, -1.0, 0.3)  # fmt: skip
    check_png(plots.render(data, tmp_path / "r.png"))


def test_heatmap(tmp_path: Path) -> None:
    data = Heatmap("bits", ("c1", "c2"), ("fc1.weight", "fc1.data_in", "fc2.weight"),
                   ((8, 8, 4), (4, math.nan, 16)), (("fixed(8,4)", "", ""), ("", "", "")),
                   "bits per element")  # fmt: skip
    check_png(plots.render(data, tmp_path / "h.png"))


def test_unknown_figure_type(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="no renderer for str"):
        plots.render("a picture", tmp_path / "x.png")


def test_every_report_picture_opens(
    compare_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    rd = tmp_path / "cmp"
    shutil.copytree(compare_dir, rd)
    report = build_report(rd)
    files = write_report(rd, "png")
    assert {p.stem for p in files.images} == {f.name for f in report.figures}
    for p in files.images:
        check_png(p)


def _all_data() -> list[object]:
    return [
        CurvePlot("Regret", "trial (count)", "regret", (("a", CURVE),), 0.0, "0", 1e-3, "note"),
        ScatterPlot(
            "All configs",
            "model size (bit)",
            "accuracy (fraction)",
            (1e4, 2e4),
            (0.7, 0.9),
            (False, True),
            (False, True),
            (False, True),
            None,
        ),
        CorrelationPlot(
            "acc vs loss",
            "loss (nat)",
            "accuracy (fraction)",
            (0.1, 0.2, 0.9),
            (0.98, 0.97, 0.7),
            (True, True, False),
            -1.0,
            0.0,
            -1.0,
            0.3,
        ),
        Heatmap("bits", ("c1",), ("fc1.weight",), ((8.0,),), (("fixed(8,4)",),), "bits"),
    ]


@pytest.mark.parametrize("index", range(4))
def test_svg_and_pdf_are_valid_and_reproducible(tmp_path: Path, index: int) -> None:
    data = _all_data()[index]
    assert isinstance(data, CurvePlot | ScatterPlot | CorrelationPlot | Heatmap)
    svg = plots.render(data, tmp_path / "f.svg")
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = "".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    assert data.title in texts  # text kept as text, not glyph outlines
    pdf = plots.render(data, tmp_path / "f.pdf")
    raw = pdf.read_bytes()
    assert raw.startswith(b"%PDF-") and raw.rstrip().endswith(b"%%EOF")
    assert b"/FontFile2" in raw and b"/Type3" not in raw  # TrueType embedded, no Type 3
    # no timestamps: the same data gives the same files (a cache and a diff can rely on it)
    assert plots.render(data, tmp_path / "g.svg").read_bytes() == svg.read_bytes()
    assert plots.render(data, tmp_path / "g.pdf").read_bytes() == raw
    # PNG at the publication resolution
    png = plots.render(data, tmp_path / "f.png")
    dpi = Image.open(png).info["dpi"]
    assert round(dpi[0]) == plots.DPI == 200


def test_unknown_figure_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"one of \['png', 'svg', 'pdf'\] \(got 'jpg'\)"):
        plots.render(_all_data()[0], tmp_path / "f.jpg")


SHORT = Curve((1, 2, 3, 4, 5), (0.05, 0.01, 0.002, 0.0, 0.0), (0.02, 0.005, 0.0, 0.0, 0.0),
              (0.08, 0.02, 0.004, 0.001, 0.0), (3,) * 5)  # fmt: skip


def test_count_axes_get_integer_ticks() -> None:
    from matplotlib.figure import Figure

    data = CurvePlot("Best", "trial (count)", "objective", (("a", SHORT),), None, "")
    ticks = plots.draw(data).axes[0].get_xticks()
    assert len(ticks) >= 3 and all(float(t).is_integer() for t in ticks), ticks
    # the test can fail: matplotlib's own choice over five trials puts ticks at halves
    ax = Figure().add_subplot()
    ax.plot(SHORT.x, SHORT.median)
    assert not all(float(t).is_integer() for t in ax.get_xticks())


def test_markers_only_on_data_points() -> None:
    curves = plots.draw(CurvePlot("c", "trial (count)", "y", (("a", SHORT), ("b", CURVE)), 0.0,
                                  "ref", 1e-3))  # fmt: skip
    lines = curves.axes[0].get_lines()
    assert len(lines) == 3 and all(line.get_marker() in ("None", "", None) for line in lines)
    scatter = plots.draw(_all_data()[1])
    ax = scatter.axes[0]
    assert all(line.get_marker() in ("None", "", None) for line in ax.get_lines())
    # the configs are scatter points: one marker per config
    assert sum(np.asarray(c.get_offsets()).shape[0] for c in ax.collections) >= 2


def test_regret_axis_is_symmetric_log_and_shows_zero() -> None:
    data = CurvePlot("Regret", "trial (count)", "simple regret", (("a", SHORT),), 0.0, "0: opt",
                     1e-3)  # fmt: skip
    fig = plots.draw(data)
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog"
    assert getattr(ax.yaxis.get_transform(), "linthresh", None) == 1e-3
    lo, hi = ax.get_ylim()
    assert lo < 0 < 1e-3 < max(SHORT.q3) < hi  # zero inside the axes, above its edge
    fig.canvas.draw()
    ticks = zip(ax.get_yticks(), ax.get_yticklabels(), strict=True)
    labels = {float(t): text.get_text() for t, text in ticks}
    assert labels[0.0] == "$\\mathdefault{0}$"
    assert 0.01 in labels and 0.1 in labels  # decades above the linear range
    linear = plots.draw(CurvePlot("Best", "trial (count)", "y", (("a", SHORT),), None, ""))
    assert linear.axes[0].get_yscale() == "linear"


@pytest.mark.parametrize("n", [1, 2, 4, 8])
def test_strategy_curves_are_distinct_in_colour_and_line_style(n: int) -> None:
    names = ["brute_force", "tpe", "random", "nsga2", "nsga3", "qmc", "local", "sensitivity"][:n]
    series = tuple((name, SHORT) for name in names)
    ax = plots.draw(CurvePlot("c", "trial (count)", "y", series, None, "")).axes[0]
    styles = {line.get_label(): (line.get_color(), line.get_linestyle()) for line in ax.get_lines()}
    assert len(styles) == n
    colours = [c for c, _ in styles.values()]
    dashes = [d for _, d in styles.values()]
    # each of colour and line style alone tells up to four (colour: seven) strategies apart
    assert len(set(colours)) == min(n, len(plots.OKABE_ITO))
    assert len(set(dashes)) == min(n, len(plots.LINESTYLES))
    assert set(colours) <= set(plots.OKABE_ITO)
    # deterministic by name: the same strategy looks the same whatever the order given
    again = plots.draw(CurvePlot("c", "trial (count)", "y", series[::-1], None, "")).axes[0]
    assert {
        ln.get_label(): (ln.get_color(), ln.get_linestyle()) for ln in again.get_lines()
    } == styles
    assert styles[sorted(names)[0]] == (plots.OKABE_ITO[0], "-")


def test_curve_note_is_on_the_figure() -> None:
    data = CurvePlot("HV", "trial (count)", "missed", (("a", SHORT),), 0.0, "0", 1e-3,
                     "hypervolume reference point: −accuracy = -0.5")  # fmt: skip
    fig = plots.draw(data)
    assert fig.get_supxlabel() == data.note


def test_coinciding_curves_stay_visible() -> None:
    names = ["a", "b", "c", "d"]
    ax = plots.draw(CurvePlot("c", "trial (count)", "y", tuple((n, SHORT) for n in names), None,
                              "")).axes[0]  # fmt: skip
    lines = sorted(ax.get_lines(), key=lambda line: line.get_zorder())
    assert [line.get_linestyle() for line in lines] == list(plots.LINESTYLES)
    widths = [line.get_linewidth() for line in lines]
    assert widths == sorted(widths, reverse=True) and len(set(widths)) == 4  # upper: thinner
