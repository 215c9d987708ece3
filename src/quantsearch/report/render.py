"""The report drawn and written: Jinja2 templates (``templates/``; HTML autoescaped) and the
figures drawn natively as SVG (:mod:`quantsearch.report.svg`) or by matplotlib as PNG and PDF
(:mod:`quantsearch.plots`). Everything shown was computed by
:func:`quantsearch.report.build.build_report`; nothing here computes.

``report.html`` is self-contained (styles inline, pictures inline as SVG or embedded as base64
PNG, no server); ``report.md`` links the images under ``images/``. ``figure_format`` chooses
the files: ``svg`` (the default: drawn in plain Python, no matplotlib import), ``png`` (at
:data:`quantsearch.plots.DPI`), or ``pdf`` (PDFs for papers beside PNGs, which the pages show:
browsers and Markdown viewers do not display a PDF inline).

Only what changed is drawn again: ``images/.report-cache.json`` keeps, per picture file, a
digest of its data and of its renderer's source, and the rank statistics already computed, so
reporting an unchanged run directory again imports neither matplotlib nor SciPy.
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
from markupsafe import Markup

from quantsearch import plots
from quantsearch.atomic import storage_error, write_atomic
from quantsearch.errors import ConfigError
from quantsearch.report import svg
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
# the files each format's pictures depend on: a change to one draws them again
_MATPLOTLIB = (Path(plots.__file__), Path(__file__).parent / "style.py")
_RENDERERS = {"svg": svg.SOURCES, "png": _MATPLOTLIB, "pdf": _MATPLOTLIB}


@dataclass(frozen=True)
class _Picture:
    name: str
    caption: str
    mime: str
    base64: str  # a PNG, for an <img>
    inline: Markup | None  # an SVG, written into the page


def _sections(r: Report) -> list[tuple[str, Table]]:
    secs = [("Setup", r.setup), ("Search space", r.space), ("Float baseline", r.baseline)]
    if r.comparison is not None:
        secs.append(("Comparison", r.comparison))
    secs.append((r.best_title, r.best))
    if r.test is not None:
        secs.append(("Held-out test split: the chosen configs", r.test))
    return secs


def render_markdown(
    r: Report, image_dir: str = "images", image_format: str = "svg", pdf: bool = False
) -> str:
    """``report.md``: the report with its pictures (``image_format`` files) linked from
    ``image_dir``; ``pdf``: each picture's PDF beside it is linked too."""
    return _ENV.get_template("report.md").render(
        report=r, sections=_sections(r), image_dir=image_dir, image_format=image_format, pdf=pdf
    )


def render_html(
    r: Report, images: Mapping[str, bytes], image_format: str = "svg", pdf: bool = False
) -> str:
    """``report.html``: the report with every picture (``image_format`` bytes, SVG or PNG, by
    figure name) in the page: an SVG inline (this package drew it, escaping every text), a PNG
    as a base64 ``<img>``; ``pdf``: a link to each picture's PDF under ``images/``."""
    mime = _MIME[image_format]
    pictures = [
        _Picture(f.name, f.caption, mime, "", Markup(images[f.name].decode("utf-8")))
        if image_format == "svg"
        else _Picture(
            f.name, f.caption, mime, base64.b64encode(images[f.name]).decode("ascii"), None
        )
        for f in r.figures
    ]
    return _ENV.get_template("report.html").render(
        report=r, sections=_sections(r), figures=pictures, pdf=pdf
    )


def render_comparison_markdown(r: Report) -> str:
    """``comparison.md``: the comparison table, its notes and the findings."""
    return _ENV.get_template("comparison.md").render(report=r)


def write_report(run_dir: str | Path, figure_format: str = "svg") -> ReportFiles:
    """Build the report of ``run_dir`` and write ``report.html``, ``report.md`` and ``images/``.

    A comparison directory also gets ``comparison.md`` (the table and its notes).
    ``figure_format``: ``svg`` (the default), ``png`` or ``pdf`` (see the module docstring).

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
    renderer = {fmt: _digest(_RENDERERS[fmt]) for fmt in formats}
    # another format's files of an earlier report: removed once this one is whole
    stale: list[Path] = []
    for f in report.figures:
        for fmt in plots.FIGURE_FORMATS:
            path = img_dir / f"{f.name}.{fmt}"
            if fmt not in formats:
                stale.append(path)
                continue
            digest = hashlib.sha1(f"{renderer[fmt]}:{f.data!r}".encode()).hexdigest()
            if cache["figures"].get(path.name) != digest or not path.is_file():
                _draw(f.data, path, fmt)  # only what changed is drawn again
            drawn[path.name] = digest
            paths.append(path)
        images[f.name] = (img_dir / f"{f.name}.{shown}").read_bytes()
    for old in set(cache["figures"]) - set(drawn):
        # a picture this report no longer has (caches before figure formats named the PNG's stem)
        stale.append(img_dir / Path(old if "." in old else f"{old}.png").name)
    cache["figures"] = drawn
    # Each file atomically: a full disk ends in one line and leaves the previous report whole.
    write_atomic(img_dir / CACHE, json.dumps(cache))
    pdf = "pdf" in formats
    md = write_atomic(rd / "report.md", render_markdown(report, image_format=shown, pdf=pdf))
    page = write_atomic(rd / "report.html", render_html(report, images, shown, pdf))
    cmp_md = None
    if report.comparison is not None:
        cmp_md = write_atomic(rd / "comparison.md", render_comparison_markdown(report))
    for path in stale:  # the previous report.md showed them until the new one took its place
        if path not in paths:
            path.unlink(missing_ok=True)
    return ReportFiles(page, md, tuple(paths), cmp_md)


def _digest(sources: tuple[Path, ...]) -> str:
    """A digest of a renderer's source files."""
    h = hashlib.sha1()
    for source in sources:
        h.update(source.read_bytes())
    return h.hexdigest()


def _draw(data: object, path: Path, fmt: str) -> None:
    """One picture file, written atomically: SVG natively (no matplotlib), PNG and PDF with
    matplotlib."""
    if fmt == "svg":
        write_atomic(path, svg.render_svg(data))
    else:
        plots.render(data, path, fmt)


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
