"""The report's tables, as rows of already formatted cells (computed here, drawn elsewhere)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from quantsearch.compare.configs import ConfigPoint
from quantsearch.compare.result import ComparisonResult
from quantsearch.errors import QuantsearchError
from quantsearch.metrics import metric_spec
from quantsearch.report.formatting import (
    fmt_iqr,
    fmt_metric,
    fmt_share,
    fmt_value,
    layer_formats,
)
from quantsearch.search.pareto import pareto_front
from quantsearch.search.results import SearchResult
from quantsearch.search.space import choice_labels

__all__ = [
    "Table",
    "baseline_table",
    "best_table",
    "comparison_table",
    "constraints_text",
    "key_value_table",
    "objectives_text",
    "reference_words",
    "space_table",
    "test_split_table",
]


@dataclass(frozen=True)
class Table:
    """Rows of already formatted cells."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()

    def cell(self, row_key: str, column: str) -> str:
        """The cell in ``column`` of the row whose first cell is ``row_key``.

        Example:
            >>> Table(("strategy", "reached"), (("tpe", "3/3"),)).cell("tpe", "reached")
            '3/3'
        """
        j = self.columns.index(column)
        for r in self.rows:
            if r[0] == row_key:
                return r[j]
        raise KeyError(row_key)


def reference_words(cmp: ComparisonResult) -> str:
    """What the runs were measured against, in words: ``true optimum``, ``best front found``."""
    if cmp.reference == "exhaustive":
        return "true optimum" if cmp.mode == "weighted_sum" else "true Pareto front"
    return "best value found" if cmp.mode == "weighted_sum" else "best front found"


def comparison_table(cmp: ComparisonResult) -> Table:
    """The comparison table (median and IQR over seeds) of a :class:`ComparisonResult`."""
    pareto = cmp.mode == "pareto"
    target = "full hypervolume" if pareto else "optimum"
    cols = ["strategy", "reached", f"trials to {target}", f"distinct evals to {target}"]
    cols += [f"{'HV missed' if pareto else 'regret'} @{b}" for b in cmp.budgets]
    if pareto:
        cols.append("front share")
    cols += ["repeated trials", "distinct evals/run"]
    rows = []
    for s in cmp.stats:
        row = [
            s.strategy,
            f"{s.reached}/{s.runs}",
            fmt_iqr(s.trials_to_optimum),
            fmt_iqr(s.evaluations_to_optimum),
        ]
        for b in cmp.budgets:
            row.append(fmt_iqr(s.at_budget[b], fmt_share if pareto else fmt_value))
        if pareto and s.front_share is not None:
            row.append(fmt_iqr(s.front_share, fmt_share))
        row += [fmt_iqr(s.duplicate_share, fmt_share), fmt_iqr(s.evaluations)]
        rows.append(tuple(row))
    ref = reference_words(cmp)
    unit = "trials" if cmp.budget_unit == "trials" else "distinct evaluations"
    proof = "every point evaluated" if cmp.reference == "exhaustive" else "not proven optimal"
    notes = [
        f"Median (interquartile range) over {len(cmp.seeds)} seeds of {cmp.n_trials} trials each; "
        f"{cmp.space_size:,}-point space; reference: the {ref} ({proof}).",
        "∞: not reached within the trials (a run that reached it in none counts as ∞).",
    ]
    if pareto:
        notes.append(
            f"HV missed @b: 1 − (hypervolume after b {unit}) / (hypervolume of the reference "
            "front); front share: the reference front's points found."
        )
    else:
        notes.append(
            f"regret @b: the {ref} minus the best feasible objective after b {unit}"
            + (f" (reached: within {cmp.tolerance:g})." if cmp.tolerance else ".")
        )
    notes.append(
        "repeated trials: the share of a run's trials that repeated one of its own configs; "
        "distinct evals: configs new to that run."
    )
    return Table(tuple(cols), tuple(rows), tuple(notes))


def key_value_table(rows: Sequence[tuple[str, Any] | None]) -> Table:
    """A two-column table of the rows that have a value."""
    return Table(("", ""), tuple((r[0], str(r[1])) for r in rows if r and r[1] is not None))


def objectives_text(search: Mapping[str, Any]) -> str:
    """``weighted_sum: maximize accuracy × 1; minimize model_size_bits × 0.2 (relative ...)``."""
    parts = []
    for o in search.get("objectives", []):
        s = f"{o['direction']} {o['metric']}"
        if search.get("combine") == "weighted_sum":
            s += f" × {o['weight']:g}"
        if o.get("relative_to_baseline"):
            s += " (relative to float)"
        parts.append(s)
    return f"{search.get('combine')}: " + "; ".join(parts)


def constraints_text(search: Mapping[str, Any]) -> str:
    """``float accuracy − accuracy ≤ 0.05``; ``none`` without constraints."""
    cons = search.get("constraints") or []
    if not cons:
        return "none"
    words = {
        "max": "{m} ≤ {b}",
        "min": "{m} ≥ {b}",
        "max_ratio": "{m} ≤ {b} × float",
        "min_ratio": "{m} ≥ {b} × float",
        "drop": "float {m} − {m} ≤ {b}",
        "increase": "{m} − float {m} ≤ {b}",
    }
    return "; ".join(
        words.get(c["kind"], "{m} " + str(c["kind"]) + " {b}").format(
            m=c["metric"], b=f"{c['bound']:g}"
        )
        for c in cons
    )


def space_table(search: Mapping[str, Any]) -> Table:
    """One row per knob of the searched space: its number of choices and their labels."""
    rows = []
    spec = search.get("space", {})
    recorded = search.get("knob_labels") or {}  # as the search spelled them (older runs: none)
    for target, roles in (spec.get("choices") or {}).items():
        for role, choices in roles.items():
            if isinstance(choices, str):
                rows.append((f"{target}.{role}", "-", choices.replace("_", " ")))
            else:
                knob = f"{target}.{role}"
                labels = recorded.get(knob) or choice_labels(target, role, choices)
                rows.append((knob, str(len(choices)), " ".join(labels)))
    return Table(
        ("parameter", "choices", "values"),
        tuple(rows),
        (f"choices by op {spec.get('by', 'type')}",),
    )


def baseline_table(baseline: Mapping[str, float]) -> Table:
    """The float model's metrics with their units."""
    rows = []
    for k, v in baseline.items():
        try:
            unit = metric_spec(k).unit
        except QuantsearchError:
            unit = ""
        rows.append((k, fmt_metric(v), unit))
    return Table(("metric", "float model", "unit"), tuple(rows))


def test_split_table(result: SearchResult) -> Table | None:
    """The chosen configs (the best one, or every Pareto member) on the held-out test split,
    each data metric beside its validation value; ``None`` when the run measured none."""
    if not result.test_metrics:
        return None
    by_number = {t.number: t for t in result.trials}
    names: list[str] = []
    for m in result.test_metrics.values():
        names.extend(k for k in m if k not in names)
    cols = ["trial"]
    for n in names:
        cols += [f"{n} (validation)", f"{n} (test)"]
    rows = []
    for number, test in result.test_metrics.items():
        val = by_number[number].metrics if number in by_number else {}
        row = [str(number)]
        for n in names:
            row += [fmt_metric(val.get(n)), fmt_metric(test.get(n))]
        rows.append(tuple(row))
    note = (
        "validation: the split the search chose these configs by; test: held out, never seen "
        "by the search, so an unbiased estimate of how the chosen configs generalise."
    )
    return Table(tuple(cols), tuple(rows), (note,))


def _first(p: ConfigPoint) -> float:
    assert p.values is not None, "only completed configs have objective values"
    return p.values[0]


def best_table(
    points: Sequence[ConfigPoint],
    combine: str,
    directions: Sequence[str],
    objectives: Sequence[str],
    k: int = 5,
) -> tuple[Table, str, list[ConfigPoint]]:
    """The best ``k`` distinct feasible configs (weighted sum) or the front, with its title."""
    feas = [p for p in points if p.ok and p.feasible is not False]
    if combine == "weighted_sum":
        chosen = sorted(feas, key=lambda p: (-_first(p), p.trial or 0))[:k]
        title = f"Best {len(chosen)} distinct feasible configs (weighted-sum objective)"
    else:
        idx = pareto_front([p.values or () for p in feas], directions)
        chosen = sorted((feas[i] for i in idx), key=lambda p: p.values or ())
        title = f"Pareto front: {len(chosen)} non-dominated feasible configs"
    nodes: list[str] = []
    for p in chosen:
        nodes.extend(n for n in (p.config or {}) if n not in nodes)
    cols = ["#"] + (["objective"] if combine == "weighted_sum" else []) + list(objectives)
    cols += nodes
    rows = []
    for i, p in enumerate(chosen, 1):
        row = [str(i)]
        if combine == "weighted_sum":
            row.append(f"{_first(p):.4f}")
        row += [fmt_metric(p.metrics.get(m)) for m in objectives]
        fmts = layer_formats(p.config)
        row += [fmts.get(n, "float") for n in nodes]
        rows.append(tuple(row))
    if not chosen:
        title = "No feasible config was found"
    return Table(tuple(cols), tuple(rows)), title, chosen
