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
from quantsearch.report import pictures, write_report
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
    pngs = {p.name: p.read_bytes() for p in first.images}
    drawn: list[Any] = []
    real = plots.render

    def counting(data: object, path: Path, figure_format: str | None = None) -> Path:
        drawn.append(path.name)
        return real(data, path, figure_format)

    monkeypatch.setattr(plots, "render", counting)
    again = write_report(tmp_path)
    assert drawn == []
    assert again.html.read_text() == html and again.markdown.read_text() == md
    assert {p.name: p.read_bytes() for p in again.images} == pngs
    cache = json.loads((tmp_path / "images" / CACHE).read_text())
    assert cache["statistics"]  # the rank correlations, kept: no SciPy import next time
    # a missing picture, or one whose data changed, is drawn again; only that one
    first.images[0].unlink()
    cache["figures"][first.images[1].name] = "stale"
    (tmp_path / "images" / CACHE).write_text(json.dumps(cache))
    write_report(tmp_path)
    assert sorted(drawn) == sorted(p.name for p in first.images[:2])


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
def test_reports_import_scipy_never_and_matplotlib_only_to_draw(
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
    # the first report draws (matplotlib) and computes its rank correlations and paired tests
    # without SciPy (compare/correlation.py, compare/wilcoxon.py)
    first = subprocess.run(run, capture_output=True, text=True, check=True)
    assert first.stdout.strip() == "['matplotlib']", first.stdout
    second = subprocess.run(run, capture_output=True, text=True, check=True)
    assert second.stdout.strip() == "[]", second.stdout
