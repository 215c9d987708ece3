"""``quantsearch report RUN_DIR``: a self-contained HTML report and a Markdown one.

The report package loads Jinja2 and the result readers, and matplotlib when a PNG or PDF must be
drawn, but not torch, Optuna nor SciPy (``tests/test_startup.py``); it is imported inside the
command so that ``quantsearch --help`` loads none of it.
"""

from __future__ import annotations

import click

from quantsearch.cli.common import figure_format_option, json_option
from quantsearch.cli.printing import dumps


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@figure_format_option
@json_option
def report(run_dir: str, figure_format: str, as_json: bool) -> None:
    """Write report.html (images embedded) and report.md for a search or compare RUN_DIR."""
    from quantsearch.report import write_report  # see the module docstring

    files = write_report(run_dir, figure_format.lower())
    if as_json:
        click.echo(
            dumps(
                {
                    "html": str(files.html),
                    "markdown": str(files.markdown),
                    "images": [str(p) for p in files.images],
                }
            )
        )
        return
    click.echo(f"report: {files.html}")
    click.echo(f"markdown: {files.markdown}")
