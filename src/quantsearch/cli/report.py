"""``quantsearch report RUN_DIR``: a self-contained HTML report and a Markdown one.

The report package loads Jinja2 and the result readers, and matplotlib when a PNG or PDF must be
drawn, but not torch, Optuna nor SciPy (``tests/test_startup.py``); it is imported inside the
command so that ``quantsearch --help`` loads none of it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import click

from quantsearch.cli.common import figure_format_option, json_option
from quantsearch.cli.printing import dumps
from quantsearch.errors import ConfigError
from quantsearch.paths import check_in_the_way


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@figure_format_option
@json_option
def report(run_dir: str, figure_format: str, as_json: bool) -> None:
    """Write report.html (images embedded) and report.md for a search or compare RUN_DIR."""
    from quantsearch.report import write_report  # see the module docstring

    check_run_files(Path(run_dir))
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


# What `search` and `compare` write that the report reads or that a reader of the report
# relies on (model.pt: `quantize --from-run`), and how each begins.
_FILES = ("best.json", "pareto.json", "search_config.json", "comparison.json", "model.pt")
_JSON = ("baseline.json",)  # the others' readers say what is wrong in them
_TEXT = {"trials.csv": "number,", "trials.jsonl": "{", "configs.jsonl": "{"}


def check_run_files(run_dir: Path) -> None:
    """Refuse a run directory whose result files are folders, dangling links or not what
    their names say (or whose images folder is a file), before any report file is written: the report would be drawn from it
    as if nothing were wrong (a garbage model.pt, a folder named trials.csv)."""

    names = (*_FILES, *_JSON, *_TEXT, "study.journal")
    check_in_the_way(run_dir, "RUN_DIR", names, ("images",), writer="`quantsearch`")
    for name in names:
        path = run_dir / name
        if not path.exists():
            continue
        try:
            head = path.read_bytes()[:4096] if name != "model.pt" else b""
            if name == "model.pt" and not _is_checkpoint(path):
                _bad(path, "not a checkpoint (no torch zip archive)")
        except OSError as exc:
            _bad(path, f"unreadable ({exc.strerror})")
        if name in _JSON:
            try:
                ok = isinstance(json.loads(path.read_bytes()), dict)
            except ValueError:
                ok = False
            if not ok:
                _bad(path, "not a JSON object")
        elif (
            name in _TEXT
            and (head or name == "trials.csv")
            and not head.startswith(_TEXT[name].encode())
        ):
            _bad(path, f"not what search writes there (it begins {head[:20]!r})")


def _is_checkpoint(path: Path) -> bool:
    """``torch.save``'s zip archive holds ``<name>/data.pkl`` (read without importing torch)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/data.pkl") for n in z.namelist())


def _bad(path: Path, what: str) -> None:
    raise ConfigError(
        f"RUN_DIR: got {str(path)!r}, {what}, allowed: the {path.name} that `quantsearch` "
        "wrote; move it away or run the search again"
    )
