"""Figures for papers and slides: regret curves (checked against NumPy's quantiles), the
symmetric-log axis and the hypervolume reference point stated, and the figure formats
(PNG, SVG, PDF) through ``write_report`` and the CLI."""

from __future__ import annotations

import math
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from quantsearch import plots
from quantsearch.cli import main
from quantsearch.compare import ComparisonResult
from quantsearch.compare.configs import read_configs
from quantsearch.compare.stats import median_curve
from quantsearch.errors import ConfigError
from quantsearch.report import write_report
from quantsearch.report.figures import CurvePlot, Heatmap, ScatterPlot
from quantsearch.report.pictures import (
    correlation,
    curve_figures,
    point_figures,
    regret_curve,
    scatter,
    symlog_threshold,
)
from quantsearch.report.tables import best_table
from tests.compare.fixtures import (  # noqa: F401  (fixtures)
    compare_dir,
    lab,
    lab_comparison,
    pareto_comparison,
)


def test_regret_curve_equals_numpy_quantiles_of_the_regrets() -> None:
    rng = np.random.default_rng(0)
    runs = np.maximum.accumulate(rng.uniform(0.5, 0.9, size=(7, 12)), axis=1)  # best so far
    optimum = 0.9
    curve = regret_curve(median_curve(runs.tolist(), 12), optimum)
    q1, med, q3 = np.quantile(optimum - runs, [0.25, 0.5, 0.75], axis=0)  # referee
    np.testing.assert_allclose(curve.median, med, rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve.q1, q1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve.q3, q3, rtol=0, atol=1e-12)
    assert regret_curve(median_curve([[-np.inf, 0.9]], 2), 0.9).median == (np.inf, 0.0)


def test_symlog_threshold_is_a_decade_at_or_below_the_smallest_regret() -> None:
    c = regret_curve(median_curve([[0.5, 0.8972, 0.9]], 3), 0.9)
    assert symlog_threshold([c]) == 1e-3  # smallest positive regret 0.0028
    assert symlog_threshold([regret_curve(median_curve([[0.9]], 1), 0.9)]) == 1e-3


def test_comparison_curves_are_regrets_on_a_symmetric_log_axis(
    lab_comparison: ComparisonResult,  # noqa: F811
) -> None:
    figs = curve_figures(lab_comparison, single=False)
    assert [f.name for f in figs] == ["regret_vs_trials", "regret_vs_evaluations"]
    optimum = lab_comparison.optimum
    assert optimum is not None
    for f in figs:
        data = f.data
        assert isinstance(data, CurvePlot)
        assert data.reference == 0.0 and data.linthresh > 0
        assert f"linear from 0 to {data.linthresh:g}" in f.caption and "labelled 0" in f.caption
        ax = plots.draw(data).axes[0]
        assert ax.get_yscale() == "symlog"
        assert all(float(t).is_integer() for t in ax.get_xticks())
    trials = figs[0].data
    assert isinstance(trials, CurvePlot)
    for (label, curve), s in zip(trials.series, lab_comparison.stats, strict=True):
        assert label.startswith(s.strategy)
        expected = [optimum - v for v in s.by_trial.median]
        np.testing.assert_allclose(curve.median, expected, rtol=0, atol=1e-12)
        # the median regret at each budget is the comparison table's regret @b, the curve
        # read as the step it is drawn as (its value at the last x at or before b: past the
        # longest run it has one point at the budget, as compare.stats.with_tail says)
        assert trials.series and curve.x[-1] == lab_comparison.n_trials
        for b, q in s.at_budget.items():
            at = max(i for i, x in enumerate(curve.x) if x <= b)
            assert curve.median[at] == pytest.approx(q.median, abs=1e-12)


def test_hypervolume_figure_states_its_reference_point(
    pareto_comparison: ComparisonResult,  # noqa: F811
) -> None:
    cmp = pareto_comparison
    assert cmp.reference_point is not None
    figs = curve_figures(cmp, single=False)
    assert [f.name for f in figs] == [
        "hypervolume_missed_vs_trials",
        "hypervolume_missed_vs_evaluations",
    ]
    for f in figs:
        data = f.data
        assert isinstance(data, CurvePlot)
        for value in cmp.reference_point:
            assert f"{value:.4g}" in data.note and f"{value:.4g}" in f.caption
        assert "hypervolume reference point" in f.caption
        fig = plots.draw(data)
        assert fig.get_supxlabel() == data.note  # on the picture itself, not only the page
        assert fig.axes[0].get_yscale() == "symlog"


def _copy(source: Path, tmp_path: Path) -> Path:
    out = tmp_path / "cmp"
    shutil.copytree(source, out)
    return out


def test_svg_reports_embed_and_link_svg(compare_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    rd = _copy(compare_dir, tmp_path)
    write_report(rd, "png")
    files = write_report(rd)  # the default: SVG
    assert files.images and all(p.suffix == ".svg" for p in files.images)
    assert not list((rd / "images").glob("*.png"))  # the earlier report's PNGs are gone
    page = files.html.read_text()
    inline = re.findall(r"<svg .*?</svg>", page, flags=re.DOTALL)
    assert len(inline) == len(files.images) and "data:image" not in page
    for svg in inline:
        assert ET.fromstring(svg).tag == "{http://www.w3.org/2000/svg}svg"
    assert set(inline) == {p.read_text() for p in files.images}
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", files.markdown.read_text())
    assert links and all(link.endswith(".svg") and (rd / link).is_file() for link in links)


def test_pdf_reports_write_pdfs_beside_the_pngs_they_show(
    compare_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    rd = _copy(compare_dir, tmp_path)
    files = write_report(rd, "pdf")
    pdfs = sorted(p for p in files.images if p.suffix == ".pdf")
    pngs = sorted(p for p in files.images if p.suffix == ".png")
    assert pdfs and [p.stem for p in pdfs] == [p.stem for p in pngs]
    assert all(p.read_bytes().startswith(b"%PDF-") for p in pdfs)
    assert files.html.read_text().count("data:image/png;base64,") == len(pngs)
    # and linked, relative to the report, from both pages
    for page in (files.html.read_text(), files.markdown.read_text()):
        assert all(f"images/{p.name}" in page for p in pdfs)
    assert "images/" not in re.sub(r"images/\w+\.pdf", "", files.html.read_text())


def test_api_refuses_an_unknown_figure_format(compare_dir: Path) -> None:  # noqa: F811
    with pytest.raises(ConfigError, match=r"^figure_format: 'jpg' is not one of"):
        write_report(compare_dir, "jpg")


@pytest.mark.parametrize("command", ["report", "compare", "search", "demo"])
def test_bad_figure_format_is_a_one_line_error(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [command, str(tmp_path)] if command == "report" else [command]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--figure-format", "jpg"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: --figure-format: got 'jpg', allowed: one of ['png', 'svg', 'pdf']"]


def test_report_command_writes_the_format_asked(
    compare_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    rd = _copy(compare_dir, tmp_path)
    main(["report", str(rd), "--figure-format", "PNG", "--json"])  # click's Choice: any case
    written = [p for p in (rd / "images").iterdir() if not p.name.startswith(".")]
    assert written and {p.suffix for p in written} == {".png"}
    main(["report", str(rd), "--json"])  # the default
    written = [p for p in (rd / "images").iterdir() if not p.name.startswith(".")]
    assert written and {p.suffix for p in written} == {".svg"}


def test_bitwidths_picture_only_where_no_table_lists_the_front(
    compare_dir: Path,  # noqa: F811
    lab_comparison: ComparisonResult,  # noqa: F811
) -> None:
    cmp = lab_comparison
    points = read_configs(compare_dir / "configs.jsonl")
    args = (points, cmp.objective_names, cmp.baseline, set(), None)
    drawn = point_figures(*args, set())  # no table lists a config: the picture shows them
    assert [f.name for f in drawn] == ["pareto_view", "bitwidths"]
    scatter_data, heat = drawn[0].data, drawn[1].data
    assert isinstance(scatter_data, ScatterPlot) and isinstance(heat, Heatmap)
    assert len(heat.row_labels) == sum(scatter_data.on_front)  # one row per front config
    served = point_figures(*args, {p.config_hash for p in points})
    assert [f.name for f in served] == ["pareto_view"]
    assert "in the table of best configs" in served[0].caption
    # as the report decides it: the best table's configs against the front
    _, _, chosen = best_table(points, cmp.mode, cmp.directions, cmp.objective_names)
    sc = scatter(points, cmp.objective_names, cmp.baseline, set(), "t")
    assert sc is not None
    listed = {p.config_hash for p in chosen}
    names = [f.name for f in point_figures(*args, listed)]
    assert ("bitwidths" in names) == (not {p.config_hash for p in sc[1]} <= listed)


def test_points_with_a_nan_or_infinite_metric_are_left_out_of_the_pictures() -> None:
    # A completed record read back from a run directory may hold a non-finite value (a
    # user's metric, a damaged file); the referee is the SVG's own text: no "nan"/"inf"
    # coordinate, and the correlation counts only the finite configs.
    from quantsearch.compare.configs import ConfigPoint
    from quantsearch.report.svg import render_svg

    def point(i: int, loss: float, acc: float) -> ConfigPoint:
        return ConfigPoint(f"h{i}", "COMPLETE", (acc,), {"loss": loss, "accuracy": acc,
                           "model_size_bits": 100.0 * (i + 1)}, True, None, {}, None)  # fmt: skip

    pts = [point(0, 0.5, 0.9), point(1, math.nan, 0.8), point(2, 0.7, math.inf),
           point(3, 0.9, 0.6), point(4, 1.1, 0.5)]  # fmt: skip
    corr = correlation(pts)
    assert corr is not None and corr.x == (0.5, 0.9, 1.1) and "over 3 distinct" in corr.title
    got = scatter(pts, ["accuracy", "model_size_bits"], {"accuracy": math.nan,
                  "model_size_bits": 800.0}, set(), "All configs")  # fmt: skip
    assert got is not None
    plot, _ = got
    assert plot.y == (0.9, 0.8, 0.6, 0.5) and plot.baseline is None
    for data in (corr, plot):
        svg = render_svg(data)
        assert not re.search(r'="[^"]*(nan|inf)', svg), svg
