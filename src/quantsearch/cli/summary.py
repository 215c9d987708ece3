"""``quantsearch summary``: the per-node table of a traced model."""

from __future__ import annotations

import click

from quantsearch.cli.common import config_option, json_option, load_config_or_default, load_option


@click.command()
@config_option
@load_option
@json_option
def summary(config_path: str | None, load: str | None, as_json: bool) -> None:
    """Trace the model and print one row per graph node."""
    import json

    from quantsearch.summary import graph_table
    from quantsearch.session import open_session

    cfg = load_config_or_default(config_path)
    session = open_session(cfg, load)
    gm = session.trace()
    table = graph_table(gm)
    if as_json:
        click.echo(json.dumps(table, indent=2))
    else:
        from quantsearch.console import print_table

        print_table(table["nodes"], title=f"{session.model_name} ({len(table['nodes'])} nodes)")
