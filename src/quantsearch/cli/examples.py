"""``quantsearch examples``: the packaged example configs, one line each."""

from __future__ import annotations

import click

from quantsearch.cli.common import json_option
from quantsearch.cli.console import print_table
from quantsearch.cli.printing import dumps
from quantsearch.examples import list_examples


@click.command()
@json_option
def examples(as_json: bool) -> None:
    """List the packaged example configs; `--config NAME` runs one from any folder."""
    rows = [{"name": name, "description": text} for name, text in list_examples()]
    if as_json:
        click.echo(dumps(rows))
        return
    print_table(rows, title="examples (quantsearch search --config NAME)")
