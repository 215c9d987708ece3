"""Console rendering with rich; tables arrive as plain rows (data apart from rendering).

Rich is imported inside the functions: every subcommand module imports this one, and
``quantsearch --help`` should not pay for rich's start-up.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "format_value", "print_table", "rule"]


LOG_WIDTH = 10_000  # columns when stdout is a pipe or file: whole rows, never cut at 80


def console() -> Console:
    """A rich console on standard output; full width when that is not a terminal (logs, CI)."""
    from rich.console import Console

    if sys.stdout.isatty() or os.environ.get("COLUMNS"):
        return Console()
    return Console(width=LOG_WIDTH)


def rule(out: Console, title: str) -> None:
    """A section rule, at most 100 columns wide (a log console is 10,000: a rule fills it)."""
    from rich.rule import Rule

    out.print(Rule(title), width=min(out.width, 100))


def format_value(v: Any) -> str:
    """A cell: ``-`` for none, four significant figures, thousands separated."""
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:  # NaN
            return "nan"
        if abs(v) >= 1e6 or (v != 0 and abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:,.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, (list, tuple)):
        return "x".join(str(x) for x in v) if all(isinstance(x, int) for x in v) else str(v)
    return str(v)


def print_table(
    rows: Sequence[dict[str, Any]],
    *,
    title: str | None = None,
    columns: Sequence[str] | None = None,
) -> None:
    """Print ``rows`` (dicts sharing keys) as a rich table; numbers right-aligned."""
    from rich.table import Table
    from rich.text import Text

    # Text, not str: a cell or title is never read as rich markup ("[quantize]" would vanish)
    cols = list(columns or (rows[0].keys() if rows else []))
    table = Table(title=None if title is None else Text(title), header_style="bold")
    for c in cols:
        numeric = any(
            isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in rows
        )
        table.add_column(Text(c), justify="right" if numeric else "left")
    for r in rows:
        table.add_row(*(Text(format_value(r.get(c))) for c in cols))
    console().print(table)
