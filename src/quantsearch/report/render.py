"""The report drawn and written: Jinja2 templates (``templates/``; HTML autoescaped) and the
figures drawn by :mod:`quantsearch.plots`. Everything shown was computed by
:func:`quantsearch.report.build.build_report`; nothing here computes.

``report.html`` is self-contained (styles inline, images embedded as base64 PNG or SVG, no
server); ``report.md`` links the images under ``images/``. ``figure_format`` chooses the files:
``png`` (the default, at :data:`quantsearch.plots.DPI`), ``svg`` (embedded and linked as SVG), or
``pdf`` (PDFs for papers beside PNGs, which the pages show: browsers and Markdown viewers do not
display a PDF inline).

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
from quantsearch.errors import ConfigError
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


_MIME = {"png": "image/png", "svg": "image/svg+xml"}


@dataclass(frozen=True)
class _Picture:
    name: str
    caption: str
    mime: str
    base64: str


def _sections(r: Report) -> list[tuple[str, Table]]:
    secs = [("Setup", r.setup), ("Search space", r.space), ("Float baseline", r.baseline)]
    if r.comparison is not None:
        secs.append(("Comparison", r.comparison))
    secs.append((r.best_title, r.best))
    if r.test is not None:
        secs.append(("Held-out test split: the chosen configs", r.test))
    return secs


def render_markdown(
    r: Report, image_dir: str = "images", image_format: str = "png", pdf: bool = False
) -> str:
    """``report.md``: the report with its pictures (``image_format`` files) linked from
    ``image_dir``; ``pdf``: each picture's PDF beside it is linked too."""
    return _ENV.get_template("report.md").render(
        report=r, sections=_sections(r), image_dir=image_dir, image_format=image_format, pdf=pdf
    )


def render_html(
    r: Report, images: Mapping[str, bytes], image_format: str = "png", pdf: bool = False
) -> str:
    """``report.html``: the report with every picture (``image_format`` bytes, PNG or SVG, by
    figure name) embedded; ``pdf``: a link to each picture's PDF under ``images/``."""
    mime = _MIME[image_format]
    pictures = [
        _Picture(f.name, f.caption, mime, base64.b64encode(images[f.name]).decode("ascii"))
        for f in r.figures
    ]
    return _ENV.get_template("report.html").render(
        report=r, sections=_sections(r), figures=pictures, pdf=pdf
    )


def render_comparison_markdown(r: Report) -> str:
    """``comparison.md``: the comparison table, its notes and the findings."""
    return _ENV.get_template("comparison.md").render(report=r)


def write_report(run_dir: str | Path, figure_format: str = "png") -> ReportFiles:
    """Build the report of ``run_dir`` and write ``report.html``, ``report.md`` and ``images/``.

    A comparison directory also gets ``comparison.md`` (the table and its notes).
    ``figure_format``: ``png``, ``svg`` or ``pdf`` (see the module docstring).

    Example:
        >>> files = write_report("runs/mlp_digits_lab-compare")  # doctest: +SKIP
        >>> files.html.name  # doctest: +SKIP
        'report.html'
    """
    if figure_format not in plots.FIGURE_FORMATS:
        raise ConfigError(
            f"figure_format: {figure_format!r} is not one of {list(plots.FIGURE_FORMATS)}"
        )
    shown = "svg" if figure_format == "svg" else "png"
    formats = [shown, "pdf"] if figure_format == "pdf" else [shown]
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
        digest = hashlib.sha1(f"{renderer}:{f.data!r}".encode()).hexdigest()
        for fmt in plots.FIGURE_FORMATS:
            path = img_dir / f"{f.name}.{fmt}"
            if fmt not in formats:
                path.unlink(missing_ok=True)  # another format's file of an earlier report
                continue
            if cache["figures"].get(path.name) != digest or not path.is_file():
                with atomic_path(path) as tmp:  # only what changed is drawn again
                    plots.render(f.data, tmp, fmt)
            drawn[path.name] = digest
            paths.append(path)
        images[f.name] = (img_dir / f"{f.name}.{shown}").read_bytes()
    for old in set(cache["figures"]) - set(drawn):
        # a picture this report no longer has (caches before figure formats named the PNG's stem)
        (img_dir / Path(old if "." in old else f"{old}.png").name).unlink(missing_ok=True)
    cache["figures"] = drawn
    # Each file atomically: a full disk ends in one line and leaves the previous report whole.
    write_atomic(img_dir / CACHE, json.dumps(cache))
    pdf = "pdf" in formats
    md = write_atomic(rd / "report.md", render_markdown(report, image_format=shown, pdf=pdf))
    page = write_atomic(rd / "report.html", render_html(report, images, shown, pdf))
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
