"""Results on the terminal: a search's best configs (or front), a comparison's table and
findings, and each as JSON (``--json``). Tables arrive computed; this module only prints them.

The report and compare packages import torch (through the formats and the study loop), so they
are imported inside the functions here: ``quantsearch --help`` imports this module.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from quantsearch.cli.console import console, print_table
from quantsearch.search.results import ReportFiles, SearchResult
from quantsearch.search.trial import TrialInfo

if TYPE_CHECKING:
    from quantsearch.compare.result import ComparisonResult

__all__ = [
    "comparison_json",
    "comparison_record",
    "dumps",
    "print_comparison",
    "print_result",
    "search_json",
    "search_record",
]


def print_result(result: SearchResult) -> None:
    """The best configs (or the front) as a table; a per-layer table when knobs are many."""
    s = result.summary()
    title = (
        f"{result.study_name}: {s['trials']} trials, {s['evaluations']} distinct evaluations of "
        f"{s['space_size']:,} points, {s['feasible']} feasible"
        + (f", {s['prechecked']} pre-checked infeasible" if s["prechecked"] else "")
        + (f", {s['pruned']} pruned" if s["pruned"] else "")
    )
    rows = result.best_rows()
    if not rows:
        console().print(title + ": no feasible trial")
    else:
        n_params = len(result.trials[0].params) if result.trials else 0
        wide = n_params > 3  # one column per knob would not fit a terminal
        shown = [{k: v for k, v in r.items() if "." not in k} for r in rows] if wide else rows
        what = "best configs" if result.combine == "weighted_sum" else "Pareto front"
        print_table(shown, title=f"{title} — {what}")
        first = _first_chosen(result)
        if wide and first is not None:
            layers = _layer_formats(result, first)
            if layers:
                print_table(layers, title=f"trial {first.number}: formats per layer")
    if result.run_dir is not None:
        console().print(f"run directory: {result.run_dir}", markup=False, highlight=False)


def _first_chosen(result: SearchResult) -> TrialInfo | None:
    """The best trial, or the front's first: the one whose formats the per-layer table shows."""
    return result.best or (result.pareto[0] if result.pareto else None)


def _layer_formats(result: SearchResult, trial: TrialInfo) -> list[dict[str, Any]]:
    """One row per quantized node of ``trial``'s config: each role's format as a label."""
    from quantsearch.report.formatting import format_label  # torch, see the module docstring

    config = result.config_of(trial) or {}
    return [
        {"layer": node, **{role: format_label(f) for role, f in roles.items()}}
        for node, roles in config.items()
    ]


def search_record(result: SearchResult, files: ReportFiles | None) -> dict[str, Any]:
    """What :func:`print_result` prints, as plain data: the summary (best.json's or
    pareto.json's), the table's rows, the per-layer formats of the best trial (or the front's
    first), and the files written."""
    first = _first_chosen(result)
    return {
        "summary": result.summary(),
        "rows": result.best_rows(),
        "formats": None
        if first is None
        else {"trial": first.number, "layers": _layer_formats(result, first)},
        "run_dir": result.run_dir,
        "report": files.html if files else None,
        "markdown": files.markdown if files else None,
    }


def search_json(result: SearchResult, files: ReportFiles | None) -> str:
    """``quantsearch search --json``: :func:`search_record` as one JSON document."""
    return dumps(search_record(result, files))


def dumps(data: Any) -> str:
    """One JSON document, standard JSON: infinities and NaN as strings, paths as strings."""
    from quantsearch.compare.result import jsonable  # torch: module docstring

    return json.dumps(jsonable(data), indent=2)


def print_comparison(result: ComparisonResult) -> None:
    """Print a comparison's table, its notes, the findings and where the tables are saved."""
    from quantsearch.report.findings import comparison_findings  # torch: module docstring
    from quantsearch.report.tables import comparison_table

    table = comparison_table(result)
    print_table(
        [dict(zip(table.columns, row, strict=True)) for row in table.rows],
        title=(
            f"{len(result.strategies)} strategies x {len(result.seeds)} seeds x "
            f"{result.n_trials} trials on {result.space_size} points — median (IQR)"
        ),
    )
    out = console()
    for note in table.notes:
        out.print(f"[dim]{note}[/dim]", highlight=False)
    out.print("")
    for finding in comparison_findings(result, table):
        out.print(f"• {finding}", highlight=False)
    if result.run_dir is not None:
        out.print(
            f"\ntable: {result.run_dir / 'comparison.csv'}, {result.run_dir / 'comparison.md'}",
            highlight=False,
        )


def comparison_record(result: ComparisonResult) -> dict[str, Any]:
    """What :func:`print_comparison` prints, as plain data: the table as numbers, the
    findings and the files."""
    from quantsearch.report.findings import comparison_findings  # torch: module docstring

    files = result.report
    return {
        "table": result.table_rows(),
        "findings": comparison_findings(result),
        "evaluations": result.evaluations,
        "run_dir": result.run_dir,
        "report": files.html if files else None,
        "markdown": files.markdown if files else None,
    }


def comparison_json(result: ComparisonResult) -> str:
    """``quantsearch compare --json``: :func:`comparison_record` as one JSON document."""
    return dumps(comparison_record(result))
