"""Reports: the HTML is self-contained and embeds every picture; findings repeat the table's
numbers; a search run directory reports too."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from scipy import stats
from torch import nn

from quantsearch.compare import ComparisonResult, run_comparison
from quantsearch.data import DataSplits
from quantsearch.errors import ConfigError
from quantsearch.report import (
    build_report,
    comparison_findings,
    comparison_table,
    fmt_count,
    fmt_iqr,
    fmt_share,
    write_report,
)
from quantsearch.search import search
from tests.compare.fixtures import (  # noqa: F401  (fixtures)
    CONSTRAINTS,
    WEIGHTED,
    Lab,
    compare_dir,
    lab,
    lab_comparison,
    make_lab,
)
from tests.search.spaces import LAB_SPACE

COMPARE_FIGURES = {"regret_vs_trials", "regret_vs_evaluations", "pareto_view", "bitwidths",
                   "accuracy_vs_loss"}  # fmt: skip
SEARCH_FIGURES = {"regret_vs_trials", "pareto_view", "bitwidths", "accuracy_vs_loss"}


def drawn(run_dir: Path, every: set[str]) -> set[str]:
    """The pictures a report of ``run_dir`` holds: ``every``, less the front's bitwidths where
    the Pareto view's caption says the table of best configs lists the front's formats. Which
    configs the front holds depends on the trained weights, which differ between CPUs (the
    session's mlp fixture trains to other weights on another machine)."""
    captions = {f.name: f.caption for f in build_report(run_dir).figures}
    served = "in the table of best configs" in captions["pareto_view"]
    assert ("bitwidths" in captions) is not served
    return every - {"bitwidths"} if served else every


class Page(HTMLParser):
    """Collects every tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text())
    page.close()
    return page


def test_html_parses_and_embeds_every_picture(compare_dir: Path) -> None:  # noqa: F811
    html = (compare_dir / "report.html").read_text()
    page = parse(compare_dir / "report.html")
    figures = drawn(compare_dir, COMPARE_FIGURES)
    # the default format: every picture an SVG written into the page, none an <img>
    assert [tag for tag, _ in page.tags].count("svg") == len(figures)
    assert not [a for tag, a in page.tags if tag == "img"]
    inline = re.findall(r"<svg .*?</svg>", html, flags=re.DOTALL)
    for svg in inline:
        root = ET.fromstring(svg)  # well-formed XML, as a standalone .svg file is
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        width, height = (float(v) for v in root.attrib["viewBox"].split()[2:])
        assert width >= 400 and height >= 250
    # self-contained: nothing fetched from elsewhere
    for tag, a in page.tags:
        assert tag not in ("script", "link", "iframe", "use", "image")
        for key, value in a.items():  # (an SVG's xmlns names its namespace: nothing fetched)
            assert key == "xmlns" or not (value or "").startswith(("http:", "https:", "//"))
    on_disk = {p.read_text() for p in (compare_dir / "images").glob("*.svg")}
    assert set(inline) == on_disk
    assert {p.stem for p in (compare_dir / "images").glob("*.svg")} == figures
    assert not list((compare_dir / "images").glob("*.png"))


def test_markdown_links_the_pictures_and_holds_the_table(compare_dir: Path) -> None:  # noqa: F811
    md = (compare_dir / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {Path(link).stem for link in links} == drawn(compare_dir, COMPARE_FIGURES)
    for link in links:
        assert (compare_dir / link).is_file()
    for name in ("## Findings", "## Comparison", "## Float baseline", "## Search space"):
        assert name in md
    assert (compare_dir / "comparison.md").read_text().count("\n| ") >= 4  # header + rows


STRATEGY_FINDING = re.compile(
    r"^(\w+) reached the true optimum in a median of (\S+) trials \(IQR (\S+)–(\S+)\) and "
    r"(\S+) distinct evaluations \(IQR (\S+)–(\S+)\), in (\d+) of (\d+) seeds; (\d+)% of its"
)


def _cell_parts(cell: str) -> tuple[str, str, str]:
    m = re.fullmatch(r"(\S+) \((\S+)–(\S+)\)", cell)
    return (m.group(1), m.group(2), m.group(3)) if m else (cell, cell, cell)


def test_findings_numbers_equal_the_tables(lab_comparison: ComparisonResult) -> None:  # noqa: F811
    table = comparison_table(lab_comparison)
    findings = comparison_findings(lab_comparison, table)
    matched = set()
    for f in findings:
        m = STRATEGY_FINDING.match(f)
        if not m:
            continue
        name = m.group(1)
        s = lab_comparison.stats_of(name)
        matched.add(name)
        assert m.groups()[1:4] == _cell_parts(table.cell(name, "trials to optimum"))
        assert m.groups()[4:7] == _cell_parts(table.cell(name, "distinct evals to optimum"))
        # and the cells are the numbers themselves
        q = s.trials_to_optimum
        assert m.groups()[1:4] == (fmt_count(q.median), fmt_count(q.q1), fmt_count(q.q3))
        assert (int(m.group(8)), int(m.group(9))) == (s.reached, s.runs)
        assert f"{m.group(10)}%" == fmt_share(s.duplicate_share.median)
        assert table.cell(name, "repeated trials").startswith(f"{m.group(10)}%")
    assert matched == {"tpe", "random", "nsga2"}
    bf = lab_comparison.stats_of("brute_force")
    bf_line = next(f for f in findings if f.startswith("brute_force"))
    assert f"at trial {fmt_count(bf.trials_to_optimum.median)} " in bf_line
    assert f"exactly {lab_comparison.space_size} trials" in bf_line
    cost = next(f for f in findings if "distinct configs" in f)
    assert f"evaluated {lab_comparison.evaluations} distinct configs" in cost
    assert f"cost {lab_comparison.evaluations_unshared} evaluations" in cost
    assert f"made {sum(r.trials for r in lab_comparison.runs)} trials" in cost


def test_correlation_finding_equals_scipy_on_the_configs(compare_dir: Path) -> None:  # noqa: F811
    rows = [json.loads(x) for x in (compare_dir / "configs.jsonl").read_text().splitlines()]
    done = [r for r in rows if r["state"] == "COMPLETE"]
    loss = [r["metrics"]["loss"] for r in done]
    acc = [r["metrics"]["accuracy"] for r in done]
    rho = stats.spearmanr(loss, acc)[0]
    tau = stats.kendalltau(loss, acc)[0]
    report = build_report(compare_dir)
    line = next(f for f in report.findings if "Spearman" in f)
    assert f"Across {len(done)} distinct configs" in line
    assert f"ρ = {rho:.2f} " in line and f"τ = {tau:.2f} " in line
    assert ("act as one quality metric" in line) == (abs(rho) >= 0.8)


def test_findings_do_not_claim_an_unreached_optimum(lab: Lab) -> None:  # noqa: F811
    short = run_comparison(lab.space, lab.evaluator, lab.cfg, strategies=["random"],
                           seeds=[0, 1, 2, 3, 4], n_trials=2)  # fmt: skip
    s = short.stats_of("random")
    assert 2 * s.reached < s.runs, "the test needs a strategy that mostly misses"
    table = comparison_table(short)
    (line,) = [f for f in comparison_findings(short, table) if f.startswith("random")]
    assert "median of" not in line
    assert f"{s.reached} of {s.runs} seeds" in line if s.reached else "did not reach" in line
    assert table.cell("random", "trials to optimum").split(" ")[0] == "∞"


def test_no_feasible_config_means_no_optimum_claimed(
    mlp: nn.Module,
    digits: DataSplits,
    tmp_path: Path,
) -> None:
    impossible = make_lab(mlp, digits, WEIGHTED, {"accuracy": {"min": 1.0}})  # ~90% at best
    cmp = run_comparison(impossible.space, impossible.evaluator, impossible.cfg,
                         strategies=["tpe"], seeds=[0], n_trials=4)  # fmt: skip
    assert cmp.optimum is None
    findings = comparison_findings(cmp)
    assert findings[0].startswith("No feasible config was found (every point")
    assert not any("reached" in f for f in findings)
    cmp.write(tmp_path)
    files = write_report(tmp_path)  # renders without an optimum line
    assert files.html.is_file()


def test_fmt_iqr() -> None:
    from quantsearch.compare import Quartiles

    assert fmt_iqr(Quartiles(3.25, 5.5, 10.75)) == "5.5 (3.25–10.75)"
    assert fmt_iqr(Quartiles(10, 10, 10)) == "10"
    assert fmt_iqr(Quartiles(9, 12.5, float("inf"))) == "12.5 (9–∞)"
    assert fmt_iqr(Quartiles(0.36, 0.37, 0.43), fmt_share) == "37% (36%–43%)"


def test_search_run_directory_report(
    mlp: nn.Module,
    digits: DataSplits,
    tmp_path: Path,
) -> None:
    result = search(
        mlp, digits.val, space=LAB_SPACE, objectives=WEIGHTED, constraints=CONSTRAINTS,
        strategy="brute_force", n_trials=16, run_dir=tmp_path,
    )  # fmt: skip
    files = write_report(tmp_path)
    page = parse(files.html)
    pictures = [a for tag, a in page.tags if tag == "svg"]
    # brute force: every trial a new config, so "regret vs evaluations" would repeat "vs trials"
    assert len(pictures) == len(files.images)
    assert {p.stem for p in files.images} == drawn(tmp_path, SEARCH_FIGURES)
    report = build_report(tmp_path)
    assert report.kind == "search" and report.comparison is None
    assert report.findings[0].startswith("16 trials made 16 distinct evaluations")
    assert any("true optimum" in f for f in report.findings)
    best = result.best
    assert best is not None
    assert f"objective {best.values[0]:.4f}" in report.findings[1]  # type: ignore[index]
    assert report.best.rows[0][1] == f"{best.values[0]:.4f}"  # type: ignore[index]
    # per-layer formats of the best config are in the table
    assert any("w fixed(" in c for c in report.best.rows[0])


def test_bad_run_dirs_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"RUN_DIR: got .*, which does not exist"):
        build_report(tmp_path / "absent")
    with pytest.raises(ConfigError, match=r"RUN_DIR: .* neither a search run directory"):
        build_report(tmp_path)


def test_large_counts_in_findings_and_notes_are_grouped(lab_comparison: ComparisonResult) -> None:  # noqa: F811
    """cnn-digits' space printed as '54875873536-point space', and the lab comparison's
    '1328 trials' where the README quotes 1,328: counts are grouped as every table's are."""
    import dataclasses

    big = dataclasses.replace(lab_comparison, space_size=54_875_873_536, evaluations_unshared=1328)
    cost = next(f for f in comparison_findings(big) if " runs made " in f)
    assert "of the 54,875,873,536-point space" in cost and "cost 1,328 evaluations" in cost
    assert any("54,875,873,536-point space" in n for n in comparison_table(big).notes)
