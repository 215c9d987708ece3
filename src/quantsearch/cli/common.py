"""Options and helpers shared by several subcommands."""

from __future__ import annotations

from typing import Any

import click

from quantsearch.examples import default_config_path

config_option = click.option(
    "--config",
    "-c",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file (default: the embedded digits example).",
)
load_option = click.option(
    "--load",
    "load",
    type=click.Path(dir_okay=False),
    default=None,
    help="Checkpoint written by `quantsearch train`.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def load_config_or_default(path: str | None) -> Any:
    """The config at ``path``, or the packaged default example."""
    from quantsearch.config import load_config  # imports torch: deferred for `--help` start-up

    return load_config(default_config_path() if path is None else path)
