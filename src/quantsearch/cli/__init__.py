"""The ``quantsearch`` command line: a thin layer over the Python API.

Each subcommand lives in its own module and imports torch only inside its body, so
``quantsearch --help`` stays fast. :func:`main` turns every :class:`QuantsearchError` into one
line on stderr and exit status 2 — never a traceback for bad input.
"""

from __future__ import annotations

import sys

import click

from quantsearch.cli import _commands
from quantsearch.errors import QuantsearchError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="quantsearch")
def cli() -> None:
    """Design-space exploration of neural-network quantization in PyTorch.

    Typical flow: `train` a model, `summary` its graph and costs, `search` quantization
    configs, `compare` strategies, `report` a run directory.
    """


_commands.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        cli.main(args=argv, standalone_mode=False, prog_name="quantsearch")
    except QuantsearchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
