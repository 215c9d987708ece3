"""The templates: HTML escapes every cell, caption and finding; the templates ship as package data."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from quantsearch.report import Figure, Report, Table, render_html, render_markdown
from quantsearch.report.figures import CurvePlot
from quantsearch.report.render import TEMPLATES

EVIL = "<script>alert('x')</script> & \"quoted\""


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.text.extend(v or "" for _, v in attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _report() -> Report:
    table = Table(("a|b", EVIL), ((EVIL, "1|2"),), (EVIL,))
    figure = Figure("fig", EVIL, CurvePlot("t", "x", "y", (), None, ""))
    return Report(
        title=EVIL,
        kind="search",
        run_dir=Path("."),
        findings=[EVIL],
        setup=Table(("", ""), (("study", EVIL),)),
        space=table,
        baseline=table,
        best=table,
        best_title=EVIL,
        figures=[figure],
        config_json=EVIL,
    )


def test_html_escapes_everything_it_is_given() -> None:
    page = render_html(_report(), {"fig": b"png"}, "png")
    parser = Tags()
    parser.feed(page)
    parser.close()
    assert "script" not in parser.tags
    assert "<script>" not in page
    # every place the text went, it comes back intact once unescaped
    assert sum(EVIL in t for t in parser.text) >= 8
    assert parser.tags.count("img") == 1 and "base64,cG5n" in page


def test_markdown_escapes_pipes_in_cells_only() -> None:
    md = render_markdown(_report())
    assert "| a\\|b |" in md and "| 1\\|2 |" in md
    assert md.startswith(f"# {EVIL}\n\n## Findings\n\n- {EVIL}\n")
    assert md.endswith(f"```json\n{EVIL}\n```\n")


def test_templates_ship_with_the_package() -> None:
    import tomllib

    names = {p.name for p in TEMPLATES.iterdir()}
    assert {"report.html", "report.md", "comparison.md", "table.md", "report.css"} <= names
    root = Path(__file__).parents[2]
    data = tomllib.loads((root / "pyproject.toml").read_text())
    assert "report/templates/*" in data["tool"]["setuptools"]["package-data"]["quantsearch"]
