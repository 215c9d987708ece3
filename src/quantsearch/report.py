"""Reports of a search or comparison run directory: tables and findings first, pictures second.

:func:`build_report` reads a run directory and computes everything a reader sees as plain data
(tables of strings, figure data, findings); :mod:`quantsearch.plots` draws the figures;
:func:`write_report` writes ``report.html`` (self-contained: images embedded as base64 PNGs, no
server) and ``report.md`` (images beside it, under ``images/``).

A *search* run directory is what ``quantsearch search`` writes (``trials.jsonl``,
``baseline.json``, ``best.json`` or ``pareto.json``, ``search_config.json``); a *comparison*
directory is what ``quantsearch compare`` writes (``comparison.json``, ``configs.jsonl`` ...,
see :meth:`quantsearch.compare.ComparisonResult.write`).

Findings are sentences generated from the table's own cells (the same formatted strings), and
say only what those numbers show.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from quantsearch.errors import ConfigError

__all__ = [
    "ConfigPoint",
    "CorrelationPlot",
    "CurvePlot",
    "Figure",
    "Heatmap",
    "Report",
    "ReportFiles",
    "ScatterPlot",
    "Table",
    "build_report",
    "comparison_findings",
    "comparison_table",
    "correlation",
    "fmt_count",
    "fmt_iqr",
    "load_search_result",
    "write_report",
]

ROLE_ORDER = ("data_in", "weight", "bias", "data_out")
ROLE_SHORT = {"data_in": "in", "weight": "w", "bias": "b", "data_out": "out"}


# -- plain data -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """Rows of already formatted cells."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = ()

    def cell(self, row_key: str, column: str) -> str:
        """The cell in ``column`` of the row whose first cell is ``row_key``."""
        j = self.columns.index(column)
        for r in self.rows:
            if r[0] == row_key:
                return r[j]
        raise KeyError(row_key)


@dataclass(frozen=True)
class ConfigPoint:
    """One distinct config that was evaluated: its metrics, objective values and formats."""

    config_hash: str
    state: str
    values: tuple[float, ...] | None
    metrics: dict[str, float]
    feasible: bool | None
    error: str | None
    params: dict[str, Any]
    config: dict[str, Any] | None
    trial: int | None = None  # the trial that first had it (search runs)

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETE" and self.values is not None


@dataclass(frozen=True)
class CurvePlot:
    """Median lines with IQR bands per strategy, and a dashed reference line."""

    title: str
    xlabel: str
    ylabel: str
    series: tuple[tuple[str, Any], ...]  # (label, quantsearch.compare.Curve)
    reference: float | None
    reference_label: str


@dataclass(frozen=True)
class ScatterPlot:
    """Every evaluated config in two metrics; the front highlighted; the float baseline marked."""

    title: str
    xlabel: str
    ylabel: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    feasible: tuple[bool, ...]
    on_front: tuple[bool, ...]
    best: tuple[bool, ...]
    baseline: tuple[float, float] | None


@dataclass(frozen=True)
class CorrelationPlot:
    """Accuracy against loss over distinct configs, with rank correlations."""

    title: str
    xlabel: str
    ylabel: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    feasible: tuple[bool, ...]
    spearman: float
    spearman_p: float
    kendall: float
    kendall_p: float


@dataclass(frozen=True)
class Heatmap:
    """Per-layer bitwidths: one row per config, one column per node and role."""

    title: str
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]  # nan: the role is not quantized
    cells: tuple[tuple[str, ...], ...]  # the text in each cell (the format's fields)
    colorbar: str


FigureData = CurvePlot | ScatterPlot | CorrelationPlot | Heatmap


@dataclass(frozen=True)
class Figure:
    name: str  # file stem
    caption: str
    data: FigureData


@dataclass
class Report:
    """Everything a report shows, computed from a run directory."""

    title: str
    kind: Literal["search", "compare"]
    run_dir: Path
    findings: list[str]
    setup: Table
    space: Table
    baseline: Table
    best: Table
    best_title: str
    comparison: Table | None = None
    figures: list[Figure] = field(default_factory=list)
    config_json: str = ""


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    markdown: Path
    images: tuple[Path, ...]
    comparison_markdown: Path | None = None


# -- number formatting: one formatter per kind of cell; findings reuse the cells ----------------


def fmt_count(x: float) -> str:
    """A count or a median of counts: ``10``, ``5.5``, ``3.25``; ``∞`` for not reached."""
    if math.isinf(x):
        return "∞"
    if math.isnan(x):
        return "-"
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.2f}".rstrip("0").rstrip(".")


def fmt_share(x: float) -> str:
    """A share as a percentage: ``37%``."""
    return "-" if math.isnan(x) else f"{100 * x:.0f}%"


def fmt_value(x: float) -> str:
    """An objective value or a regret, to two significant figures (``0`` exactly)."""
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    return f"{x:.2g}"


def fmt_iqr(q: Any, fmt: Any = fmt_count) -> str:
    """``median (q1–q3)``, or just the median when the quartiles are equal."""
    m, a, b = fmt(q.median), fmt(q.q1), fmt(q.q3)
    return m if a == b == m else f"{m} ({a}–{b})"


def _fmt_metric(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isnan(x):
        return "nan"
    if float(x).is_integer() and abs(x) >= 1000:
        return f"{int(x):,}"
    return f"{x:.4g}"


# -- comparison table and findings -------------------------------------------------------------


def _reference_words(cmp: Any) -> str:
    if cmp.reference == "exhaustive":
        return "true optimum" if cmp.mode == "weighted_sum" else "true Pareto front"
    return "best value found" if cmp.mode == "weighted_sum" else "best front found"


def comparison_table(cmp: Any) -> Table:
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
        if pareto:
            row.append(fmt_iqr(s.front_share, fmt_share))
        row += [fmt_iqr(s.duplicate_share, fmt_share), fmt_iqr(s.evaluations)]
        rows.append(tuple(row))
    ref = _reference_words(cmp)
    notes = [
        f"Median (interquartile range) over {len(cmp.seeds)} seeds of {cmp.n_trials} trials each; "
        f"{cmp.space_size}-point space; reference: the {ref}"
        + (
            f" ({'every point evaluated' if cmp.reference == 'exhaustive' else 'not proven optimal'})."
        ),
        "∞: not reached within the trials (a run that reached it in none counts as ∞).",
    ]
    if pareto:
        notes.append(
            "HV missed @b: 1 − (hypervolume after b trials) / (hypervolume of the reference "
            "front); front share: the reference front's points found."
        )
    else:
        notes.append(
            f"regret @b: the {ref} minus the best feasible objective after b trials"
            + (f" (reached: within {cmp.tolerance:g})." if cmp.tolerance else ".")
        )
    notes.append(
        "repeated trials: the share of a run's trials that repeated one of its own configs; "
        "distinct evals: configs new to that run."
    )
    return Table(tuple(cols), tuple(rows), tuple(notes))


def comparison_findings(cmp: Any, table: Table | None = None) -> list[str]:
    """Sentences generated from :func:`comparison_table`'s own cells."""
    t = table or comparison_table(cmp)
    pareto = cmp.mode == "pareto"
    target = "full hypervolume" if pareto else "optimum"
    ref = _reference_words(cmp)
    tcol, ecol = f"trials to {target}", f"distinct evals to {target}"
    out: list[str] = []
    if cmp.optimum is None and not cmp.reference_hypervolume:
        return [
            f"No feasible config was found ({'every point' if cmp.reference == 'exhaustive' else 'every config any run evaluated'} "
            f"broke a constraint or failed), so there is no optimum to reach and no strategy "
            f"is measured against one.",
            _cost_finding(cmp),
        ]
    exhaustive = {"brute_force", "grid"}
    for s in cmp.stats:
        name = s.strategy
        reached = f"{s.reached} of {s.runs} seeds"
        dup = t.cell(name, "repeated trials")
        if name == "brute_force" and cmp.reference == "exhaustive":
            certify = (
                f"needs exactly {cmp.space_size} trials to enumerate the space and so certify "
                f"the {ref}"
            )
            if s.reached == s.runs and s.trials_to_optimum.q1 == s.trials_to_optimum.q3:
                out.append(
                    f"brute_force visits points in a fixed order: it first met the {ref} at "
                    f"trial {t.cell(name, tcol)} and {certify}."
                )
            else:
                out.append(f"brute_force {certify}; it reached it in {reached}.")
            continue
        if s.reached == 0:
            last = f"{'HV missed' if pareto else 'regret'} @{cmp.budgets[-1]}"
            out.append(
                f"{name} did not reach the {ref} within {cmp.n_trials} trials in any of "
                f"{s.runs} seeds (median {last.split(' @')[0]} after {cmp.budgets[-1]} trials: "
                f"{t.cell(name, last).split(' (')[0]})."
            )
            continue
        if 2 * s.reached < s.runs:
            out.append(
                f"{name} reached the {ref} in only {reached} within {cmp.n_trials} trials, so "
                f"its median trials to it is not defined (∞)."
            )
            continue
        sentence = (
            f"{name} reached the {ref} in a median of {_median_iqr(t.cell(name, tcol), 'trials')} "
            f"and {_median_iqr(t.cell(name, ecol), 'distinct evaluations')}, in {reached}; "
            f"{dup.split(' (')[0]} of its trials repeated a config it had already tried"
        )
        if name in exhaustive:
            sentence += " (an exhaustive strategy)"
        out.append(sentence + ".")
    ranked = sorted(
        (s for s in cmp.stats if 2 * s.reached >= s.runs),
        key=lambda s: (s.trials_to_optimum.median, s.strategy),
    )
    if len(ranked) >= 2:
        first, second = ranked[0], ranked[1]
        listing = ", ".join(
            f"{s.strategy} {t.cell(s.strategy, tcol).split(' (')[0]}" for s in ranked
        )
        line = f"Median trials to the {ref}: {listing}."
        tied = [
            s.strategy
            for s in ranked
            if s.trials_to_optimum.median == first.trials_to_optimum.median
        ]
        if len(tied) > 1:
            line += f" {', '.join(tied[:-1])} and {tied[-1]} tie for the fewest."
        elif first.trials_to_optimum.q3 >= second.trials_to_optimum.q1:
            line += (
                f" The interquartile ranges of {first.strategy} and {second.strategy} overlap: "
                f"{len(cmp.seeds)} seeds do not separate them."
            )
        out.append(line)
    for pair in cmp.prefix_overlap:
        a, b, lengths = pair["a"], pair["b"], pair["lengths"]
        if lengths and min(lengths) >= 5:
            if pair.get("identical"):
                out.append(
                    f"{a} and {b} proposed identical trial sequences in all {len(lengths)} seeds."
                )
            else:
                out.append(
                    f"{a} and {b} proposed the same first {min(lengths)} trials in every seed "
                    f"(at most {max(lengths)})."
                )
    out.append(_cost_finding(cmp))
    return out


def _cost_finding(cmp: Any) -> str:
    total_trials = sum(r.trials for r in cmp.runs)
    line = (
        f"The {len(cmp.runs)} runs made {total_trials} trials; the comparison evaluated "
        f"{cmp.evaluations} distinct configs of the {cmp.space_size}-point space"
    )
    if cmp.shared_cache:
        line += (
            f" (one shared cache; with a cache per run it would have cost "
            f"{cmp.evaluations_unshared} evaluations)."
        )
    else:
        line += " (a cache per run, no sharing)."
    return line


def _median_iqr(cell: str, unit: str) -> str:
    """``("5.5 (3.25–10.75)", "trials")`` -> ``"5.5 trials (IQR 3.25–10.75)"``."""
    if " (" in cell:
        m, rest = cell.split(" (", 1)
        return f"{m} {unit} (IQR {rest}"
    return f"{cell} {unit} (IQR {cell}–{cell})"


# -- points, pictures and their data -------------------------------------------------------------


_NAMES = {
    "model_size_bits": "model size",
    "avg_weight_bits": "average weight width",
    "bitops": "BitOPs",
    "loss": "loss (cross-entropy)",
    "balanced_accuracy": "balanced accuracy",
}


def _metric_label(name: str) -> str:
    """An axis label with the unit: ``model size (bit)``."""
    from quantsearch.metrics import metric_spec

    try:
        unit = metric_spec(name).unit
    except Exception:  # a metric the registry no longer knows: show the bare name
        return name
    return f"{_NAMES.get(name, name.replace('_', ' '))} ({unit})"


def _direction(name: str) -> str:
    from quantsearch.metrics import metric_spec

    try:
        return metric_spec(name).direction
    except Exception:
        return "maximize"


def _plot_metrics(points: Sequence[ConfigPoint], objectives: Sequence[str]) -> tuple[str, str]:
    """(x, y) metrics of the Pareto view: a cost on x, a quality on y."""
    have = set().union(*(p.metrics for p in points if p.ok)) if points else set()
    if len(objectives) >= 2:
        a, b = objectives[0], objectives[1]
        return (b, a) if _direction(a) == "maximize" else (a, b)
    quality = objectives[0] if objectives else "accuracy"
    if _direction(quality) == "minimize":
        quality = "accuracy" if "accuracy" in have else quality
    for cost in ("model_size_bits", "bitops", "avg_weight_bits"):
        if cost in have and cost != quality:
            return cost, quality
    others = sorted(m for m in have if m != quality)
    return (others[0] if others else quality), quality


def _front_flags(
    xs: Sequence[float], ys: Sequence[float], ok: Sequence[bool], dx: str, dy: str
) -> list[bool]:
    from quantsearch.search.objective import pareto_front

    idx = [i for i in range(len(xs)) if ok[i]]
    front = pareto_front([(xs[i], ys[i]) for i in idx], [dx, dy])
    on = [False] * len(xs)
    for j in front:
        on[idx[j]] = True
    return on


def _bits(option: Mapping[str, Any]) -> float:
    from quantsearch.formats import make_format

    fields = {k: v for k, v in option.items() if k != "format"}
    try:
        return float(make_format(str(option["format"]), fields, key="report").bits_per_element)
    except Exception:  # "auto" fields or an unknown format: fall back to the stored width
        w = option.get("width")
        return float(w) if isinstance(w, (int, float)) else math.nan


def format_label(option: Mapping[str, Any] | None) -> str:
    """``{"format": "fixed", "width": 8, "frac_width": 4, "signed": True}`` -> ``fixed(8,4)``.

    The format's own name for itself (``ufixed(8,4)``, ``minifloat(e4m3,b7)``); a table that
    does not make a format (a pending ``"auto"``) is spelled out from its values.
    """
    from quantsearch.formats import format_from_dict

    if not option:
        return "float"
    try:
        return str(format_from_dict(option, key="report"))
    except ConfigError:
        pass
    fields = {k: v for k, v in option.items() if k not in ("format", "signed", "rounding")}
    name = str(option.get("format"))
    if option.get("signed") is False:
        name = "u" + name
    extra = [] if option.get("rounding", "nearest") == "nearest" else [str(option["rounding"])]
    return f"{name}({','.join([*(str(v) for v in fields.values()), *extra])})"


def layer_formats(config: Mapping[str, Any] | None) -> dict[str, str]:
    """Per node: ``"in fixed(8,4) · w fixed(8,4) · b fixed(8,4)"``."""
    out = {}
    for node, roles in (config or {}).items():
        parts = [
            f"{ROLE_SHORT.get(r, r)} {format_label(roles[r])}"
            for r in (*ROLE_ORDER, *sorted(set(roles) - set(ROLE_ORDER)))
            if r in roles
        ]
        out[node] = " · ".join(parts)
    return out


def correlation(
    points: Sequence[ConfigPoint], x: str = "loss", y: str = "accuracy"
) -> CorrelationPlot | None:
    """Spearman's ρ and Kendall's τ-b of ``y`` against ``x`` over distinct completed configs.

    ``None`` when either metric is missing or fewer than three configs have both.
    """
    from scipy import stats

    pts = [p for p in points if p.ok and x in p.metrics and y in p.metrics]
    xs = [float(p.metrics[x]) for p in pts]
    ys = [float(p.metrics[y]) for p in pts]
    if len(pts) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    rho, rho_p = stats.spearmanr(xs, ys)
    tau, tau_p = stats.kendalltau(xs, ys)
    return CorrelationPlot(
        title=f"{y.replace('_', ' ').capitalize()} against {x} over {len(pts)} distinct configs",
        xlabel=_metric_label(x),
        ylabel=_metric_label(y),
        x=tuple(xs),
        y=tuple(ys),
        feasible=tuple(p.feasible is not False for p in pts),
        spearman=float(rho),
        spearman_p=float(rho_p),
        kendall=float(tau),
        kendall_p=float(tau_p),
    )


def correlation_finding(c: CorrelationPlot, x: str = "loss", y: str = "accuracy") -> str:
    """What the rank correlations say, in words tied to stated thresholds on ``|ρ|``."""
    n = len(c.x)
    head = (
        f"Across {n} distinct configs, {y} and {x} have Spearman ρ = {c.spearman:.2f} "
        f"(p = {c.spearman_p:.2g}) and Kendall τ = {c.kendall:.2f} (p = {c.kendall_p:.2g})"
    )
    r = abs(c.spearman)
    if r >= 0.8:
        return (
            head + f": |ρ| ≥ 0.8, so ranking configs by {x} nearly reproduces their ranking by "
            f"{y} — here the two act as one quality metric."
        )
    if r >= 0.5:
        return head + ": 0.5 ≤ |ρ| < 0.8, related but not interchangeable rankings."
    return head + f": |ρ| < 0.5, so {x} and {y} rank these configs differently."


def _scatter(
    points: Sequence[ConfigPoint],
    objectives: Sequence[str],
    baseline: Mapping[str, float],
    best_hashes: set[str],
    title: str,
) -> tuple[ScatterPlot, list[ConfigPoint]] | None:
    xm, ym = _plot_metrics(points, objectives)
    pts = [p for p in points if p.ok and xm in p.metrics and ym in p.metrics]
    if not pts or xm == ym:
        return None
    xs = [float(p.metrics[xm]) for p in pts]
    ys = [float(p.metrics[ym]) for p in pts]
    feas = [p.feasible is not False for p in pts]
    on = _front_flags(xs, ys, feas, _direction(xm), _direction(ym))
    base = (float(baseline[xm]), float(baseline[ym])) if xm in baseline and ym in baseline else None
    plot = ScatterPlot(
        title=title,
        xlabel=_metric_label(xm),
        ylabel=_metric_label(ym),
        x=tuple(xs),
        y=tuple(ys),
        feasible=tuple(feas),
        on_front=tuple(on),
        best=tuple(p.config_hash in best_hashes for p in pts),
        baseline=base,
    )
    front = sorted((p for p, f in zip(pts, on, strict=True) if f), key=lambda p: p.metrics[xm])
    return plot, front


def _heatmap(front: Sequence[ConfigPoint], xm: str, ym: str, title: str) -> Heatmap | None:
    configs = [p for p in front if p.config]
    if not configs:
        return None
    cols: list[tuple[str, str]] = []
    for p in configs:
        for node, roles in (p.config or {}).items():
            for r in (*ROLE_ORDER, *sorted(set(roles) - set(ROLE_ORDER))):
                if r in roles and (node, r) not in cols:
                    cols.append((node, r))
    values = tuple(
        tuple(
            _bits(p.config[n][r]) if p.config and r in p.config.get(n, {}) else math.nan
            for n, r in cols
        )
        for p in configs
    )
    cells = tuple(
        tuple(
            format_label(p.config[n][r]) if p.config and r in p.config.get(n, {}) else ""
            for n, r in cols
        )
        for p in configs
    )
    rows = tuple(
        f"{_NAMES.get(ym, ym)} {_fmt_metric(p.metrics.get(ym))} · "
        f"{_NAMES.get(xm, xm)} {_fmt_metric(p.metrics.get(xm))}"
        for p in configs
    )
    return Heatmap(
        title=title,
        row_labels=rows,
        col_labels=tuple(f"{n}.{r}" for n, r in cols),
        values=values,
        cells=cells,
        colorbar="bits per element",
    )


# -- reading run directories -----------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"RUN_DIR: {str(path.parent)!r} has no {path.name}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"RUN_DIR: {str(path)!r} is not valid JSON: {exc}") from None


def load_search_result(run_dir: str | Path) -> Any:
    """A :class:`SearchResult` read back from a search run directory's files."""
    from quantsearch.search.results import SearchResult
    from quantsearch.search.trial import TrialInfo

    rd = Path(run_dir)
    summary_path = rd / "best.json" if (rd / "best.json").is_file() else rd / "pareto.json"
    summary = _read_json(summary_path)
    with (rd / "trials.jsonl").open() as fh:
        trials = [TrialInfo.from_dict(json.loads(line)) for line in fh if line.strip()]
    configs = {t.config_hash: t.config for t in trials if t.config is not None and t.config_hash}
    return SearchResult(
        trials=trials,
        baseline=dict(summary.get("baseline") or _read_json(rd / "baseline.json")),
        directions=list(summary["directions"]),
        combine=summary["combine"],
        objective_names=list(summary["objectives"]),
        space_size=int(summary["space_size"]),
        run_dir=rd,
        study_name=str(summary.get("study", rd.name)),
        strategy=str(summary.get("strategy", "")),
        seed=int(summary.get("seed", 0)),
        configs=configs,
    )


def _points_from_result(result: Any) -> list[ConfigPoint]:
    from quantsearch.compare import counted_trials

    seen: set[str] = set()
    out = []
    for t in counted_trials(result.trials):
        if t.config_hash is None or t.config_hash in seen:
            continue
        seen.add(t.config_hash)
        out.append(
            ConfigPoint(
                t.config_hash,
                t.state,
                t.values,
                dict(t.metrics),
                t.feasible,
                t.error,
                dict(t.params),
                result.config_of(t),
                t.number,
            )
        )
    return out


def _points_from_jsonl(path: Path) -> list[ConfigPoint]:
    out = []
    with path.open() as fh:
        for line in fh:
            if not line.strip():
                continue
            d = json.loads(line)
            out.append(
                ConfigPoint(
                    d["config_hash"],
                    d["state"],
                    tuple(d["values"]) if d.get("values") is not None else None,
                    dict(d.get("metrics") or {}),
                    d.get("feasible"),
                    d.get("error"),
                    dict(d.get("params") or {}),
                    d.get("config"),
                    None,
                )
            )
    return out


def _kv(rows: Sequence[tuple[str, Any] | None]) -> Table:
    return Table(("", ""), tuple((r[0], str(r[1])) for r in rows if r and r[1] is not None))


def _objectives_text(search: Mapping[str, Any]) -> str:
    parts = []
    for o in search.get("objectives", []):
        s = f"{o['direction']} {o['metric']}"
        if search.get("combine") == "weighted_sum":
            s += f" × {o['weight']:g}"
        if o.get("relative_to_baseline"):
            s += " (relative to float)"
        parts.append(s)
    return f"{search.get('combine')}: " + "; ".join(parts)


def _constraints_text(search: Mapping[str, Any]) -> str:
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


def _space_table(search: Mapping[str, Any]) -> Table:
    from quantsearch.search.space import option_label

    rows = []
    spec = search.get("space", {})
    for target, roles in (spec.get("choices") or {}).items():
        for role, choices in roles.items():
            if isinstance(choices, str):
                rows.append((f"{target}.{role}", "-", choices.replace("_", " ")))
            else:
                labels = " ".join(option_label(c) for c in choices)
                rows.append((f"{target}.{role}", str(len(choices)), labels))
    return Table(
        ("parameter", "choices", "values"),
        tuple(rows),
        (f"choices by op {spec.get('by', 'type')}",),
    )


def _baseline_table(baseline: Mapping[str, float]) -> Table:
    from quantsearch.metrics import metric_spec

    rows = []
    for k, v in baseline.items():
        try:
            unit = metric_spec(k).unit
        except Exception:
            unit = ""
        rows.append((k, _fmt_metric(v), unit))
    return Table(("metric", "float model", "unit"), tuple(rows))


def _best_table(
    points: Sequence[ConfigPoint],
    combine: str,
    directions: Sequence[str],
    objectives: Sequence[str],
    k: int = 5,
) -> tuple[Table, str, list[ConfigPoint]]:
    from quantsearch.search.objective import pareto_front

    feas = [p for p in points if p.ok and p.feasible is not False]
    if combine == "weighted_sum":
        chosen = sorted(feas, key=lambda p: (-p.values[0], p.trial or 0))[:k]  # type: ignore[index]
        title = f"Best {len(chosen)} distinct feasible configs (weighted-sum objective)"
    else:
        idx = pareto_front([p.values for p in feas], directions)  # type: ignore[misc]
        chosen = sorted((feas[i] for i in idx), key=lambda p: p.values)  # type: ignore[arg-type, return-value]
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
            row.append(f"{p.values[0]:.4f}")  # type: ignore[index]
        row += [_fmt_metric(p.metrics.get(m)) for m in objectives]
        fmts = layer_formats(p.config)
        row += [fmts.get(n, "float") for n in nodes]
        rows.append(tuple(row))
    if not chosen:
        title = "No feasible config was found"
    return Table(tuple(cols), tuple(rows)), title, chosen


def build_report(run_dir: str | Path) -> Report:
    """Read a search or comparison run directory and compute the report's data."""
    rd = Path(run_dir)
    if not rd.is_dir():
        raise ConfigError(f"RUN_DIR: {str(rd)!r} is not a directory")
    if (rd / "comparison.json").is_file():
        return _build_compare(rd)
    if (rd / "trials.jsonl").is_file():
        return _build_search(rd)
    raise ConfigError(
        f"RUN_DIR: {str(rd)!r} is neither a search run directory (trials.jsonl) nor a "
        f"comparison directory (comparison.json)"
    )


def _common_figures(
    points: Sequence[ConfigPoint],
    objectives: Sequence[str],
    baseline: Mapping[str, float],
    best_hashes: set[str],
    findings: list[str],
) -> list[Figure]:
    figs: list[Figure] = []
    n_ok = sum(1 for p in points if p.ok)
    sc = _scatter(
        points, objectives, baseline, best_hashes, f"Every evaluated config ({n_ok} distinct)"
    )
    if sc is not None:
        plot, front = sc
        figs.append(
            Figure(
                "pareto_view",
                "Every distinct config evaluated, in the two metrics; the non-dominated feasible "
                "ones (the front) highlighted, infeasible ones hollow, the float baseline marked.",
                plot,
            )
        )
        xm, ym = _plot_metrics(points, objectives)
        hm = _heatmap(front, xm, ym, f"Per-layer bitwidths of the {len(front)} front configs")
        if hm is not None:
            figs.append(
                Figure(
                    "bitwidths",
                    f"Bits per element of each node's roles for the configs on the {ym} / {xm} "
                    f"front of the picture above.",
                    hm,
                )
            )
    corr = correlation(points)
    if corr is not None:
        figs.append(
            Figure(
                "accuracy_vs_loss",
                "Accuracy against cross-entropy loss over the distinct configs evaluated "
                "(a config tried several times counts once).",
                corr,
            )
        )
        findings.append(correlation_finding(corr))
    return figs


def _curve_figures(cmp: Any, single: bool) -> list[Figure]:
    pareto = cmp.mode == "pareto"
    ref = _reference_words(cmp)
    who = "this run" if single else f"median and IQR over {len(cmp.seeds)} seeds"
    if pareto:
        ylabel = "hypervolume / reference front's hypervolume (fraction)"
        reference, label, stem, what = 1.0, f"{ref} (1.0)", "hypervolume", "Hypervolume"
    else:
        ylabel = "best feasible objective so far (weighted sum, dimensionless)"
        reference = cmp.optimum
        label = f"{ref} ({cmp.optimum:.4f})" if cmp.optimum is not None else ref
        stem, what = "best", "Best so far"

    def series(s: Any) -> str:
        return f"{s.strategy} (seed {cmp.seeds[0]})" if single else f"{s.strategy} (median, IQR)"

    by_trial = tuple((series(s), s.by_trial) for s in cmp.stats)
    by_eval = tuple((series(s), s.by_evaluation) for s in cmp.stats)
    return [
        Figure(
            f"{stem}_vs_trials",
            f"{what} against trial number ({who}); dashed: the {ref}. A run that has seen every "
            f"point keeps its final value.",
            CurvePlot(
                f"{what} against trials ({who})",
                "trial (count)",
                ylabel,
                by_trial,
                reference,
                label,
            ),
        ),
        Figure(
            f"{stem}_vs_evaluations",
            f"{what} against the run's own distinct evaluations ({who}; repeats of a config "
            f"cost nothing); the median is over the seeds that made at least that many, drawn "
            f"while at least half did.",
            CurvePlot(
                f"{what} against distinct evaluations ({who})",
                "distinct evaluations (count)",
                ylabel,
                by_eval,
                reference,
                label,
            ),
        ),
    ]


def _build_compare(rd: Path) -> Report:
    from quantsearch.compare import ComparisonResult

    raw = _read_json(rd / "comparison.json")
    cmp = ComparisonResult.from_dict(raw)
    meta = _read_json(rd / "compare_config.json") if (rd / "compare_config.json").is_file() else {}
    search = meta.get("search", {})
    points = _points_from_jsonl(rd / "configs.jsonl") if (rd / "configs.jsonl").is_file() else []
    table = comparison_table(cmp)
    findings = comparison_findings(cmp, table)
    setup = _kv(
        [
            ("config", meta.get("source")),
            ("model", meta.get("model")),
            ("dataset", f"{meta.get('dataset')} ({meta.get('samples')} validation samples)")
            if meta.get("dataset")
            else None,
            ("strategies", ", ".join(cmp.strategies)),
            ("seeds", ", ".join(str(s) for s in cmp.seeds)),
            ("trials per run", cmp.n_trials),
            ("space size", f"{cmp.space_size} points"),
            ("objective", _objectives_text(search) if search else ", ".join(cmp.objective_names)),
            ("constraints", _constraints_text(search) if search else None),
            (
                "reference",
                f"{_reference_words(cmp)}"
                + (
                    f" = {cmp.optimum:.6g}"
                    if cmp.optimum is not None
                    else f" ({len(cmp.front)} points)"
                    if cmp.front
                    else ""
                ),
            ),
            ("hypervolume reference point", cmp.reference_point if cmp.mode == "pareto" else None),
            (
                "evaluation cache",
                f"shared: {cmp.evaluations} distinct evaluations in all"
                if cmp.shared_cache
                else f"one per run: {cmp.evaluations} evaluations in all",
            ),
        ]
    )
    best, best_title, _ = _best_table(points, cmp.mode, cmp.directions, cmp.objective_names)
    best_hashes = set(cmp.optimum_configs)  # pareto: none; the front is drawn as the front
    figures = _curve_figures(cmp, single=False)
    figures += _common_figures(points, cmp.objective_names, cmp.baseline, best_hashes, findings)
    return Report(
        title=f"Strategy comparison: {rd.name}",
        kind="compare",
        run_dir=rd,
        findings=findings,
        setup=setup,
        space=_space_table(search) if search else Table(("parameter",), ()),
        baseline=_baseline_table(cmp.baseline),
        best=best,
        best_title=best_title + (" — from every config the comparison evaluated"),
        comparison=table,
        figures=figures,
        config_json=json.dumps(meta, indent=2, default=str),
    )


def _build_search(rd: Path) -> Report:
    from quantsearch.compare import compare_results

    result = load_search_result(rd)
    search = _read_json(rd / "search_config.json") if (rd / "search_config.json").is_file() else {}
    points = _points_from_result(result)
    exhaustive = len(points) >= result.space_size
    cmp = compare_results([result], ground_truth=result if exhaustive else None)
    run = cmp.runs[0]
    findings = [
        f"{run.trials} trials made {run.evaluations} distinct evaluations of the "
        f"{result.space_size}-point space; {fmt_share(run.duplicate_share)} of the trials "
        f"repeated a config."
    ]
    best, best_title, chosen = _best_table(
        points, result.combine, result.directions, result.objective_names
    )
    if result.combine == "weighted_sum" and chosen:
        top = chosen[0]
        parts = []
        for m in result.objective_names:
            v, b = top.metrics.get(m), result.baseline.get(m)
            parts.append(
                f"{m} {_fmt_metric(v)} (float {_fmt_metric(b)})" if b is not None else f"{m} {v}"
            )
        findings.append(
            f"Best feasible config: objective {top.values[0]:.4f}, " + ", ".join(parts) + "; "  # type: ignore[index]
            f"first reached after {run.trials_to_optimum} of the {run.trials} trials."
        )
    elif result.combine == "pareto":
        findings.append(f"The front has {len(chosen)} non-dominated feasible configs.")
    if not chosen:
        findings.append("No trial was feasible: every config broke a constraint or failed.")
    if exhaustive:
        findings.append(
            "The run evaluated every point of the space, so this is the true "
            + ("optimum." if result.combine == "weighted_sum" else "Pareto front.")
        )
    else:
        findings.append(
            f"The run evaluated {len(points)} of {result.space_size} points; a better config may "
            f"exist among the rest."
        )
    setup = _kv(
        [
            ("study", result.study_name),
            ("strategy", f"{result.strategy} (seed {result.seed})"),
            ("trials", run.trials),
            ("space size", f"{result.space_size} points"),
            ("objective", _objectives_text(search) if search else None),
            ("constraints", _constraints_text(search) if search else None),
            ("n_trials", search.get("n_trials")),
        ]
    )
    best_hashes = set(cmp.optimum_configs)
    figures = _curve_figures(cmp, single=True)
    figures += _common_figures(
        points, result.objective_names, result.baseline, best_hashes, findings
    )
    return Report(
        title=f"Search report: {rd.name}",
        kind="search",
        run_dir=rd,
        findings=findings,
        setup=setup,
        space=_space_table(search) if search else Table(("parameter",), ()),
        baseline=_baseline_table(result.baseline),
        best=best,
        best_title=best_title,
        figures=figures,
        config_json=json.dumps(search, indent=2, default=str),
    )


# -- writers ---------------------------------------------------------------------------------


def markdown_table(t: Table) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    head = t.columns if any(t.columns) else tuple(" " for _ in t.columns)
    lines = [
        "| " + " | ".join(esc(c) for c in head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in t.rows]
    if t.notes:
        lines.append("")
        lines += [f"- {n}" for n in t.notes]
    return "\n".join(lines)


def _html_table(t: Table) -> str:
    out = ["<table>"]
    if any(t.columns):
        out.append("<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in t.columns) + "</tr>")
    for r in t.rows:
        out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
    out.append("</table>")
    if t.notes:
        out.append(
            "<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in t.notes) + "</ul>"
        )
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#f3f3f3}ul.notes{font-size:.85em;color:#555}
figure{margin:1.2em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#444}pre{background:#f7f7f7;padding:.8em;overflow:auto;font-size:.8em}
"""


def _sections(r: Report) -> list[tuple[str, Table | None, str]]:
    secs: list[tuple[str, Table | None, str]] = [
        ("Setup", r.setup, ""),
        ("Search space", r.space, ""),
        ("Float baseline", r.baseline, ""),
    ]
    if r.comparison is not None:
        secs.append(("Comparison", r.comparison, ""))
    secs.append((r.best_title, r.best, ""))
    return secs


def render_markdown(r: Report, image_dir: str = "images") -> str:
    lines = [f"# {r.title}", "", "## Findings", ""]
    lines += [f"- {f}" for f in r.findings]
    for title, table, _ in _sections(r):
        lines += ["", f"## {title}", ""]
        if table is not None:
            lines.append(markdown_table(table))
    lines += ["", "## Pictures", ""]
    for f in r.figures:
        lines += [f"![{f.caption}]({image_dir}/{f.name}.png)", "", f"*{f.caption}*", ""]
    lines += ["## Config", "", "```json", r.config_json, "```", ""]
    return "\n".join(lines)


def render_html(r: Report, images: Mapping[str, bytes]) -> str:
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(r.title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(r.title)}</h1>",
        "<h2>Findings</h2><ul>",
        *(f"<li>{html.escape(f)}</li>" for f in r.findings),
        "</ul>",
    ]
    for title, table, _ in _sections(r):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if table is not None:
            parts.append(_html_table(table))
    parts.append("<h2>Pictures</h2>")
    for f in r.figures:
        data = base64.b64encode(images[f.name]).decode("ascii")
        parts.append(
            f"<figure><img alt='{html.escape(f.caption, quote=True)}' "
            f"src='data:image/png;base64,{data}'><figcaption>{html.escape(f.caption)}"
            f"</figcaption></figure>"
        )
    parts += [
        "<h2>Config</h2><details><summary>as run</summary><pre>",
        html.escape(r.config_json),
        "</pre></details>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(run_dir: str | Path) -> ReportFiles:
    """Build the report of ``run_dir`` and write ``report.html``, ``report.md`` and ``images/``.

    A comparison directory also gets ``comparison.md`` (the table and its notes).

    Example:
        >>> files = write_report("runs/mlp_digits_lab-compare")  # doctest: +SKIP
        >>> files.html.name  # doctest: +SKIP
        'report.html'
    """
    from quantsearch import plots

    report = build_report(run_dir)
    rd = report.run_dir
    img_dir = rd / "images"
    img_dir.mkdir(exist_ok=True)
    images: dict[str, bytes] = {}
    paths = []
    for f in report.figures:
        path = img_dir / f"{f.name}.png"
        plots.render(f.data, path)
        images[f.name] = path.read_bytes()
        paths.append(path)
    md = rd / "report.md"
    md.write_text(render_markdown(report))
    page = rd / "report.html"
    page.write_text(render_html(report, images))
    cmp_md = None
    if report.comparison is not None:
        cmp_md = rd / "comparison.md"
        cmp_md.write_text(
            f"# {report.title}\n\n" + markdown_table(report.comparison) + "\n\n"
            + "\n".join(f"- {f}" for f in report.findings) + "\n"
        )  # fmt: skip
    return ReportFiles(page, md, tuple(paths), cmp_md)


def print_comparison(result: Any) -> None:
    """Print a comparison's table, its notes, the findings and where the tables are saved."""
    from quantsearch.console import console, print_table

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


def report_dict(r: Report) -> dict[str, Any]:
    """The report's tables and findings as JSON-able data (``quantsearch report --json``)."""
    d = dataclasses.asdict(r)
    d["run_dir"] = str(r.run_dir)
    d.pop("figures")
    d["figures"] = [f.name for f in r.figures]
    return d
