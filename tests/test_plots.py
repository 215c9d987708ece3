"""Each renderer writes a PNG that opens, with sensible dimensions and size."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from PIL import Image

from quantsearch import plots
from quantsearch.compare import ComparisonResult, Curve
from quantsearch.report import CorrelationPlot, CurvePlot, Heatmap, ScatterPlot, build_report
from tests.compare.fixtures import compare_dir, lab, lab_comparison  # noqa: F401  (fixtures)


def check_png(path: Path) -> Image.Image:
    img = Image.open(path)
    img.load()
    assert img.format == "PNG"
    assert 400 <= img.width <= 2500 and 250 <= img.height <= 1600, img.size
    assert path.stat().st_size < 200_000
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
    lab_comparison: ComparisonResult,  # noqa: F811
) -> None:
    report = build_report(compare_dir)
    assert lab_comparison.report is not None
    assert {p.stem for p in lab_comparison.report.images} == {f.name for f in report.figures}
    for p in lab_comparison.report.images:
        check_png(p)
