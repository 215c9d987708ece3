"""``quantsearch examples``: the packaged example configs, one line each."""

from __future__ import annotations

import json

import click

from quantsearch.cli.common import json_option
from quantsearch.cli.console import print_table
from quantsearch.examples import list_examples


@click.command()
@json_option
def examples(as_json: bool) -> None:
    """List the packaged example configs; `--config NAME` runs one from any folder."""
    rows = [{"name": name, "description": text} for name, text in list_examples()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(rows, title="examples (quantsearch search --config NAME)")
