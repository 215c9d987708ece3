"""Reports draw only what changed: a second report of an unchanged run directory draws nothing
and computes no statistic again, and gives the same files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from torch import nn

from quantsearch import plots
from quantsearch.compare import ComparisonResult
from quantsearch.compare.configs import ConfigPoint
from quantsearch.compare.ranking import rank_at_budgets
from quantsearch.data import DataSplits
from quantsearch.report import build_report, pictures, render, svg, write_report
from quantsearch.report.render import CACHE
from quantsearch.search import search
from tests.compare.fixtures import compare_dir, lab, lab_comparison  # noqa: F401  (fixtures)
from tests.search.spaces import LAB_SPACE


def test_an_unchanged_run_directory_is_not_drawn_again(
    mlp: nn.Module, digits: DataSplits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    search(
        mlp, digits.val, space=LAB_SPACE, objectives={"accuracy": {"direction": "maximize"}},
        strategy="brute_force", n_trials=16, run_dir=tmp_path,
    )  # fmt: skip
    first = write_report(tmp_path)
    html, md = first.html.read_text(), first.markdown.read_text()
    files = {p.name: p.read_bytes() for p in first.images}
    names = {repr(f.data): f"{f.name}.svg" for f in build_report(tmp_path).figures}
    drawn: list[Any] = []
    real = svg.render_svg

    def counting(data: object) -> str:
        drawn.append(names[repr(data)])
        return real(data)

    monkeypatch.setattr(svg, "render_svg", counting)
    again = write_report(tmp_path)
    assert drawn == []
    assert again.html.read_text() == html and again.markdown.read_text() == md
    assert {p.name: p.read_bytes() for p in again.images} == files
    cache = json.loads((tmp_path / "images" / CACHE).read_text())
    assert cache["statistics"]  # the rank correlations, kept: no SciPy import next time
    # a missing picture, or one whose data changed, is drawn again; only that one
    first.images[0].unlink()
    cache["figures"][first.images[1].name] = "stale"
    (tmp_path / "images" / CACHE).write_text(json.dumps(cache))
    write_report(tmp_path)
    assert sorted(drawn) == sorted(p.name for p in first.images[:2])
    # a change to the renderer's source draws every picture again
    drawn.clear()
    changed = tmp_path / "changed_renderer.py"
    changed.write_text("a renderer whose source changed")
    monkeypatch.setitem(render._RENDERERS, "svg", (*svg.SOURCES, changed))
    write_report(tmp_path)
    assert sorted(drawn) == sorted(files)


def test_the_digest_covers_every_module_of_the_svg_renderer() -> None:
    """A new module of the renderer must be hashed too, or a change to it would not redraw."""
    here = Path(render.__file__).parent
    modules = {p.name for p in here.glob("svg*.py")} | {"style.py", "figure.svg"}
    assert {p.name for p in svg.SOURCES} == modules
    assert all(p.is_file() for p in svg.SOURCES)
    assert set(render._RENDERERS) == set(plots.FIGURE_FORMATS)


def test_correlation_memo_gives_the_computed_values() -> None:
    pts = [
        ConfigPoint(
            f"h{i}",
            "COMPLETE",
            (i / 10,),
            {"loss": 1 / (i + 1), "accuracy": i / 10},
            True,
            None,
            {},
            None,
        )
        for i in range(6)
    ]
    memo: dict[str, list[float]] = {}
    fresh = pictures.correlation(pts, memo=memo)
    assert memo and pictures.correlation(pts, memo=memo) == fresh == pictures.correlation(pts)


def test_paired_test_memo_gives_the_computed_p_values(
    lab_comparison: ComparisonResult,  # noqa: F811
) -> None:
    memo: dict[str, list[float]] = {}
    fresh = rank_at_budgets(lab_comparison, memo)
    assert memo, "the comparison needs at least one paired test with a nonzero difference"
    assert rank_at_budgets(lab_comparison, memo) == fresh == rank_at_budgets(lab_comparison)
    # and the memo is what answers: a changed entry comes back
    key = next(iter(memo))
    memo[key] = [0.123456]
    again = rank_at_budgets(lab_comparison, memo)
    assert 0.123456 in [t.p for r in again for t in r.tests]


@pytest.mark.slow
def test_reports_import_scipy_never_and_matplotlib_only_for_png(
    compare_dir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    rd = tmp_path / "cmp"
    shutil.copytree(compare_dir, rd)
    shutil.rmtree(rd / "images")  # nothing drawn or computed yet
    code = (
        "import sys; from quantsearch.report import write_report; "
        f"write_report({str(rd)!r}); "
        "print(sorted(m for m in ('matplotlib', 'scipy') if m in sys.modules))"
    )
    run = [sys.executable, "-c", code]
    # the first report draws its SVGs without matplotlib and computes its rank correlations
    # and paired tests without SciPy (compare/correlation.py, compare/wilcoxon.py)
    first = subprocess.run(run, capture_output=True, text=True, check=True)
    assert first.stdout.strip() == "[]", first.stdout
    second = subprocess.run(run, capture_output=True, text=True, check=True)
    assert second.stdout.strip() == "[]", second.stdout
    # PNG pictures are matplotlib's
    png = [sys.executable, "-c", code.replace(f"{str(rd)!r})", f"{str(rd)!r}, 'png')")]
    third = subprocess.run(png, capture_output=True, text=True, check=True)
    assert third.stdout.strip() == "['matplotlib']", third.stdout
