"""Which pictures a report shows, and their data (drawn by :mod:`quantsearch.plots`).

Curves come from a comparison's per-strategy statistics; the scatter, heatmap and correlation
views from the distinct configs evaluated (:class:`~quantsearch.compare.configs.ConfigPoint`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

from quantsearch.compare.configs import ConfigPoint
from quantsearch.compare.correlation import kendall_tau_b, spearman
from quantsearch.compare.result import ComparisonResult
from quantsearch.compare.stats import Curve
from quantsearch.compare.summary import StrategyStats
from quantsearch.report.figures import CorrelationPlot, CurvePlot, Figure, Heatmap, ScatterPlot
from quantsearch.report.formatting import (
    ROLE_ORDER,
    bits_per_element,
    fmt_metric,
    format_label,
    metric_direction,
    metric_label,
    metric_name,
)
from quantsearch.report.tables import reference_words
from quantsearch.search.pareto import pareto_front

__all__ = [
    "correlation",
    "curve_figures",
    "heatmap",
    "plot_metrics",
    "point_figures",
    "reference_point_text",
    "regret_curve",
    "scatter",
    "symlog_threshold",
]


def plot_metrics(points: Sequence[ConfigPoint], objectives: Sequence[str]) -> tuple[str, str]:
    """(x, y) metrics of the Pareto view: a cost on x, a quality on y."""
    have: set[str] = set().union(*(p.metrics for p in points if p.ok)) if points else set()
    if len(objectives) >= 2:
        a, b = objectives[0], objectives[1]
        return (b, a) if metric_direction(a) == "maximize" else (a, b)
    quality = objectives[0] if objectives else "accuracy"
    if metric_direction(quality) == "minimize":
        quality = "accuracy" if "accuracy" in have else quality
    for cost in ("model_size_bits", "bitops", "avg_weight_bits"):
        if cost in have and cost != quality:
            return cost, quality
    others = sorted(m for m in have if m != quality)
    return (others[0] if others else quality), quality


def _front_flags(
    xs: Sequence[float], ys: Sequence[float], ok: Sequence[bool], dx: str, dy: str
) -> list[bool]:
    idx = [i for i in range(len(xs)) if ok[i]]
    front = pareto_front([(xs[i], ys[i]) for i in idx], [dx, dy])
    on = [False] * len(xs)
    for j in front:
        on[idx[j]] = True
    return on


def correlation(
    points: Sequence[ConfigPoint],
    x: str = "loss",
    y: str = "accuracy",
    *,
    memo: dict[str, list[float]] | None = None,
) -> CorrelationPlot | None:
    """Spearman's ρ and Kendall's τ-b of ``y`` against ``x`` over distinct completed configs.

    ``None`` when either metric is missing or fewer than three configs have both. ``memo``
    (kept by :func:`~quantsearch.report.render.write_report` in the run directory) holds the
    statistics of values seen before, so a report of unchanged data does not compute them again.
    """
    pts = [p for p in points if p.ok and _finite_in(p, x, y)]
    xs = [float(p.metrics[x]) for p in pts]
    ys = [float(p.metrics[y]) for p in pts]
    if len(pts) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    key = hashlib.sha1(repr((xs, ys)).encode()).hexdigest()
    stats = memo.get(key) if memo is not None else None
    if stats is None:
        stats = [*spearman(xs, ys), *kendall_tau_b(xs, ys)]  # SciPy's, without SciPy
        if memo is not None:
            memo[key] = stats
    rho, rho_p, tau, tau_p = stats
    return CorrelationPlot(
        title=f"{y.replace('_', ' ').capitalize()} against {x} over {len(pts)} distinct configs",
        xlabel=metric_label(x),
        ylabel=metric_label(y),
        x=tuple(xs),
        y=tuple(ys),
        feasible=tuple(p.feasible is not False for p in pts),
        spearman=float(rho),
        spearman_p=float(rho_p),
        kendall=float(tau),
        kendall_p=float(tau_p),
    )


def _finite_in(point: ConfigPoint, x: str, y: str) -> bool:
    """Whether ``point`` has both metrics as finite numbers: a picture has no place for NaN or
    an infinity (matplotlib would leave such a point out silently, the SVG would write
    ``cx="nan"``); the report's tables still list the config with its values."""
    values = (point.metrics.get(x), point.metrics.get(y))
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def scatter(
    points: Sequence[ConfigPoint],
    objectives: Sequence[str],
    baseline: Mapping[str, float],
    best_hashes: set[str],
    title: str,
) -> tuple[ScatterPlot, list[ConfigPoint]] | None:
    """Every completed config in the two :func:`plot_metrics`, and the front's configs."""
    xm, ym = plot_metrics(points, objectives)
    pts = [p for p in points if p.ok and _finite_in(p, xm, ym)]
    if not pts or xm == ym:
        return None
    xs = [float(p.metrics[xm]) for p in pts]
    ys = [float(p.metrics[ym]) for p in pts]
    feas = [p.feasible is not False for p in pts]
    on = _front_flags(xs, ys, feas, metric_direction(xm), metric_direction(ym))
    base = (
        (float(baseline[xm]), float(baseline[ym]))
        if xm in baseline
        and ym in baseline
        and math.isfinite(baseline[xm])
        and math.isfinite(baseline[ym])
        else None
    )
    plot = ScatterPlot(
        title=title,
        xlabel=metric_label(xm),
        ylabel=metric_label(ym),
        x=tuple(xs),
        y=tuple(ys),
        feasible=tuple(feas),
        on_front=tuple(on),
        best=tuple(p.config_hash in best_hashes for p in pts),
        baseline=base,
    )
    front = sorted((p for p, f in zip(pts, on, strict=True) if f), key=lambda p: p.metrics[xm])
    return plot, front


def heatmap(front: Sequence[ConfigPoint], xm: str, ym: str, title: str) -> Heatmap | None:
    """Bits per element of each node's roles, one row per config of ``front``."""
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
            bits_per_element(p.config[n][r]) if p.config and r in p.config.get(n, {}) else math.nan
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
        f"{metric_name(ym)} {fmt_metric(p.metrics.get(ym))} · "
        f"{metric_name(xm)} {fmt_metric(p.metrics.get(xm))}"
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


def point_figures(
    points: Sequence[ConfigPoint],
    objectives: Sequence[str],
    baseline: Mapping[str, float],
    best_hashes: set[str],
    corr: CorrelationPlot | None,
    tabled: set[str] | None = None,
) -> list[Figure]:
    """The Pareto view, the front's bitwidths and the accuracy / loss correlation (``corr``).

    The bitwidths picture is left out when a table of the report already lists every front
    config with its per-layer formats (``tabled``: the hashes of the configs it lists): the
    picture would repeat the table's cells.
    """
    figs: list[Figure] = []
    n_ok = sum(1 for p in points if p.ok)
    sc = scatter(
        points, objectives, baseline, best_hashes, f"Every evaluated config ({n_ok} distinct)"
    )
    if sc is not None:
        plot, front = sc
        served = bool(front) and tabled is not None and {p.config_hash for p in front} <= tabled
        figs.append(
            Figure(
                "pareto_view",
                "Every distinct config evaluated, in the two metrics; the non-dominated feasible "
                "ones (the front) highlighted, infeasible ones hollow, the float baseline marked."
                + (
                    " The front's per-layer formats are in the table of best configs."
                    if served
                    else ""
                ),
                plot,
            )
        )
        xm, ym = plot_metrics(points, objectives)
        title = f"Per-layer bitwidths of the {len(front)} front configs"
        hm = None if served else heatmap(front, xm, ym, title)
        if hm is not None:
            figs.append(
                Figure(
                    "bitwidths",
                    f"Bits per element of each node's roles for the configs on the {ym} / {xm} "
                    f"front of the picture above.",
                    hm,
                )
            )
    if corr is not None:
        figs.append(
            Figure(
                "accuracy_vs_loss",
                "Accuracy against cross-entropy loss over the distinct configs evaluated "
                "(a config tried several times counts once).",
                corr,
            )
        )
    return figs


def regret_curve(curve: Curve, reference: float) -> Curve:
    """``reference`` minus a best-so-far ``curve``: its simple regret (the median of the regrets
    is the reference minus the median, and the quartiles swap); ``-inf`` (no feasible config
    yet) becomes ``inf``, and differences within 1e-12 of zero are zero.

    Example:
        >>> regret_curve(Curve((1, 2), (0.5, 0.9), (0.4, 0.9), (0.6, 0.9), (3, 3)), 0.9).q3
        (0.5, 0.0)
    """

    def r(v: float) -> float:
        d = reference - v
        return 0.0 if abs(d) <= 1e-12 else d

    def of(values: Sequence[float]) -> tuple[float, ...]:
        return tuple(r(v) for v in values)

    return Curve(curve.x, of(curve.median), of(curve.q3), of(curve.q1), curve.n)


def symlog_threshold(curves: Sequence[Curve]) -> float:
    """The linear range of a symmetric-log regret axis: the power of ten at or below the
    smallest positive finite value drawn (``1e-3`` when there is none), so zero sits on the
    axis and every nonzero regret on the logarithmic part.

    Example:
        >>> symlog_threshold([Curve((1,), (0.0028,), (0.0,), (0.0083,), (3,))])
        0.001
    """
    pos = [v for c in curves for v in (*c.median, *c.q1, *c.q3) if 0 < v < math.inf]
    return 10.0 ** math.floor(math.log10(min(pos))) if pos else 1e-3


def reference_point_text(cmp: ComparisonResult, short: bool = False) -> str:
    """The hypervolume reference point in words, objective by objective (``""`` if none);
    ``short``: the line written under a picture's axes."""
    if cmp.reference_point is None:
        return ""
    names = [f"{'−' if d == 'maximize' else ''}{n}" for n, d in zip(cmp.objective_names,
             cmp.directions, strict=True)]  # fmt: skip
    values = [f"{v:.4g}" for v in cmp.reference_point]
    if short:
        return f"HV reference point: ({', '.join(names)}) = ({', '.join(values)})"
    pairs = ", ".join(f"{n} = {v}" for n, v in zip(names, values, strict=True))
    return f"hypervolume reference point: {pairs} (all minimised; maximised objectives negated)"


def curve_figures(cmp: ComparisonResult, single: bool) -> list[Figure]:
    """Simple regret (Pareto: hypervolume missed) against trials and against distinct
    evaluations, on a symmetric log axis that shows zero; a single run measured against its own
    best keeps its best so far (hypervolume ratio) on a linear axis, where a regret would end at
    zero by construction. The curve against evaluations is left out for a single run whose trials
    were all distinct evaluations: the same curve."""
    pareto = cmp.mode == "pareto"
    ref = reference_words(cmp)
    who = "this run" if single else f"median and IQR over {len(cmp.seeds)} seeds"
    brief = "this run" if single else f"median, IQR, {len(cmp.seeds)} seeds"  # a title's width
    note = reference_point_text(cmp, short=True) if pareto else ""
    point = reference_point_text(cmp) if pareto else ""
    regret = (pareto or cmp.optimum is not None) and not (single and cmp.reference != "exhaustive")
    reference: float | None
    by_trial = [s.by_trial for s in cmp.stats]
    by_eval = [s.by_evaluation for s in cmp.stats]
    if regret:
        top = 1.0 if pareto else float(cmp.optimum or 0.0)
        by_trial = [regret_curve(c, top) for c in by_trial]
        by_eval = [regret_curve(c, top) for c in by_eval]
        linthresh = symlog_threshold(by_trial + by_eval)
        reference = 0.0
        if pareto:
            stem, what = "hypervolume_missed", "Hypervolume missed"
            ylabel = "hypervolume missed (fraction)"
            defined = f"1 − hypervolume / the {ref}'s"
        else:
            stem, what = "regret", "Simple regret"
            ylabel = "simple regret (weighted-sum objective)"
            defined = f"the {ref} − the best feasible objective so far"
        label = f"0: the {ref}" + (f" ({cmp.optimum:.4f})" if not pareto else "")
        scale = (
            f" {what}: {defined}. The y axis is symmetric-log: linear from 0 to {linthresh:g}, logarithmic above, so "
            f"zero (the {ref} reached) is drawn at the bottom and labelled 0."
        )
    else:
        linthresh, scale = 0.0, ""
        if pareto:
            ylabel = f"hypervolume / the {ref}'s (fraction)"
            reference, label, stem, what = 1.0, f"{ref} (1.0)", "hypervolume", "Hypervolume"
        else:
            ylabel = "best feasible objective so far (weighted sum, dimensionless)"
            reference = cmp.optimum
            label = f"{ref} ({cmp.optimum:.4f})" if cmp.optimum is not None else ref
            stem, what = "best", "Best so far"
    stated = f" The {point}." if point else ""

    def series(s: StrategyStats) -> str:
        return f"{s.strategy} (seed {cmp.seeds[0]})" if single else f"{s.strategy} (median, IQR)"

    names = [series(s) for s in cmp.stats]
    # A run whose every trial was a new config draws the same curve twice: a table serves.
    same = single and all(repr(s.by_trial) == repr(s.by_evaluation) for s in cmp.stats)
    figures = [
        Figure(
            f"{stem}_vs_trials",
            f"{what} against trial number ({who}); dashed: the {ref}. A run that has seen every "
            f"point keeps its final value.{scale}{stated}",
            CurvePlot(
                f"{what} against trials ({brief})",
                "trial (count)",
                ylabel,
                tuple(zip(names, by_trial, strict=True)),
                reference,
                label,
                linthresh,
                note,
            ),
        ),
        Figure(
            f"{stem}_vs_evaluations",
            f"{what} against the run's own distinct evaluations ({who}; repeats of a config "
            f"cost nothing); the median is over the seeds that made at least that many, drawn "
            f"while at least half did.{scale}{stated}",
            CurvePlot(
                f"{what} against distinct evaluations ({brief})",
                "distinct evaluations (count)",
                ylabel,
                tuple(zip(names, by_eval, strict=True)),
                reference,
                label,
                linthresh,
                note,
            ),
        ),
    ]
    return figures[:1] if same else figures
