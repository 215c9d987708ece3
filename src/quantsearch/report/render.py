"""The report drawn and written: Jinja2 templates (``templates/``; HTML autoescaped) and the
figures drawn by :mod:`quantsearch.plots`. Everything shown was computed by
:func:`quantsearch.report.build.build_report`; nothing here computes.

``report.html`` is self-contained (styles inline, images embedded as base64 PNGs, no server);
``report.md`` links the images under ``images/``.

Only what changed is drawn again: ``images/.report-cache.json`` keeps, per figure, a digest of
its data and of the renderer's source, and the rank statistics already computed, so reporting
an unchanged run directory again imports neither matplotlib nor SciPy.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from quantsearch import plots
from quantsearch.atomic import atomic_path, storage_error, write_atomic
from quantsearch.report.build import Report, build_report
from quantsearch.report.tables import Table
from quantsearch.search.results import ReportFiles

__all__ = [
    "render_comparison_markdown",
    "render_html",
    "render_markdown",
    "report_dict",
    "write_report",
]

TEMPLATES = Path(__file__).parent / "templates"
CACHE = ".report-cache.json"  # under images/: what earlier reports drew and computed

_ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default=False),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=StrictUndefined,
)


@dataclass(frozen=True)
class _Picture:
    name: str
    caption: str
    png_base64: str


def _sections(r: Report) -> list[tuple[str, Table]]:
    secs = [("Setup", r.setup), ("Search space", r.space), ("Float baseline", r.baseline)]
    if r.comparison is not None:
        secs.append(("Comparison", r.comparison))
    secs.append((r.best_title, r.best))
    if r.test is not None:
        secs.append(("Held-out test split: the chosen configs", r.test))
    return secs


def render_markdown(r: Report, image_dir: str = "images") -> str:
    """``report.md``: the report with its pictures linked from ``image_dir``."""
    return _ENV.get_template("report.md").render(
        report=r, sections=_sections(r), image_dir=image_dir
    )


def render_html(r: Report, images: Mapping[str, bytes]) -> str:
    """``report.html``: the report with every picture (PNG bytes by figure name) embedded."""
    pictures = [
        _Picture(f.name, f.caption, base64.b64encode(images[f.name]).decode("ascii"))
        for f in r.figures
    ]
    return _ENV.get_template("report.html").render(
        report=r, sections=_sections(r), figures=pictures
    )


def render_comparison_markdown(r: Report) -> str:
    """``comparison.md``: the comparison table, its notes and the findings."""
    return _ENV.get_template("comparison.md").render(report=r)


def write_report(run_dir: str | Path) -> ReportFiles:
    """Build the report of ``run_dir`` and write ``report.html``, ``report.md`` and ``images/``.

    A comparison directory also gets ``comparison.md`` (the table and its notes).

    Example:
        >>> files = write_report("runs/mlp_digits_lab-compare")  # doctest: +SKIP
        >>> files.html.name  # doctest: +SKIP
        'report.html'
    """
    img_dir = Path(run_dir) / "images"
    cache = _read_cache(img_dir / CACHE)
    report = build_report(run_dir, memo=cache["statistics"])
    rd = report.run_dir
    try:
        img_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise storage_error(img_dir, exc) or exc from None
    images: dict[str, bytes] = {}
    paths = []
    drawn: dict[str, str] = {}
    renderer = hashlib.sha1(Path(plots.__file__).read_bytes()).hexdigest()
    for f in report.figures:
        path = img_dir / f"{f.name}.png"
        digest = hashlib.sha1(f"{renderer}:{f.data!r}".encode()).hexdigest()
        if cache["figures"].get(f.name) != digest or not path.is_file():
            with atomic_path(path) as tmp:  # only what changed is drawn again
                plots.render(f.data, tmp)
        drawn[f.name] = digest
        images[f.name] = path.read_bytes()
        paths.append(path)
    cache["figures"] = drawn
    # Each file atomically: a full disk ends in one line and leaves the previous report whole.
    write_atomic(img_dir / CACHE, json.dumps(cache))
    md = write_atomic(rd / "report.md", render_markdown(report))
    page = write_atomic(rd / "report.html", render_html(report, images))
    cmp_md = None
    if report.comparison is not None:
        cmp_md = write_atomic(rd / "comparison.md", render_comparison_markdown(report))
    return ReportFiles(page, md, tuple(paths), cmp_md)


def _read_cache(path: Path) -> dict[str, Any]:
    """What earlier reports of a run directory drew (figure name -> digest of its data and of
    the renderer) and computed (statistics by digest of their values); empty if unreadable."""
    try:
        cache = json.loads(path.read_text())
    except (OSError, ValueError):
        cache = {}
    if not isinstance(cache, dict):
        cache = {}
    for key in ("figures", "statistics"):
        if not isinstance(cache.get(key), dict):
            cache[key] = {}
    return cache


def report_dict(r: Report) -> dict[str, Any]:
    """The report's tables and findings as JSON-able data (figures by name)."""
    d = dataclasses.asdict(r)
    d["run_dir"] = str(r.run_dir)
    d["figures"] = [f.name for f in r.figures]
    return d
