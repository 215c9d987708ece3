"""Reports of a search or comparison run directory: tables and findings first, pictures second.

:func:`build_report` reads a run directory and computes everything a reader sees as plain data
(tables of formatted cells, figure data, findings); :func:`write_report` draws the figures
(:mod:`quantsearch.plots`) and renders ``report.html`` (self-contained: images embedded as
base64 PNG or SVG, no server) and ``report.md`` (images beside it, under ``images/``) from Jinja2
templates. Findings are sentences generated from the tables' own cells, and say only what
those numbers show.

Modules, lowest first: ``formatting`` -> ``tables`` -> ``figures`` -> ``pictures`` ->
``findings`` -> ``build`` -> ``render`` (with ``templates/``).
"""

from __future__ import annotations

from quantsearch.compare.configs import ConfigPoint
from quantsearch.report.build import Report, build_report
from quantsearch.report.figures import CorrelationPlot, CurvePlot, Figure, Heatmap, ScatterPlot
from quantsearch.report.findings import comparison_findings, correlation_finding
from quantsearch.report.formatting import (
    fmt_count,
    fmt_iqr,
    fmt_share,
    fmt_value,
    format_label,
    layer_formats,
)
from quantsearch.report.pictures import correlation
from quantsearch.report.render import render_html, render_markdown, report_dict, write_report
from quantsearch.report.tables import Table, comparison_table
from quantsearch.search.results import ReportFiles

__all__ = [
    "ConfigPoint",
    "CorrelationPlot",
    "CurvePlot",
    "Figure",
    "Heatmap",
    "Report",
    "ReportFiles",
    "ScatterPlot",
    "Table",
    "build_report",
    "comparison_findings",
    "comparison_table",
    "correlation",
    "correlation_finding",
    "fmt_count",
    "fmt_iqr",
    "fmt_share",
    "fmt_value",
    "format_label",
    "layer_formats",
    "render_html",
    "render_markdown",
    "report_dict",
    "write_report",
]
