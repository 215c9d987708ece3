"""``quantsearch metrics``: every metric name with its unit, direction and description."""

from __future__ import annotations

import click

from quantsearch.cli.common import json_option
from quantsearch.cli.console import print_table
from quantsearch.cli.printing import dumps
from quantsearch.metrics import metric_specs


@click.command()
@json_option
def metrics(as_json: bool) -> None:
    """List the metric names that search objectives, constraints and `summary` use."""
    rows = [
        {
            "name": s.name,
            "unit": s.unit,
            "direction": s.direction,
            "kind": s.kind,
            "description": s.description,
        }
        for s in metric_specs()
    ]
    if as_json:
        click.echo(dumps(rows))
        return
    print_table(
        rows,
        title="metrics (kind: static = from the graph, data = one pass over the data, latency = timed)",
    )
