"""Which pictures a report shows, and their data (drawn by :mod:`quantsearch.plots`).

Curves come from a comparison's per-strategy statistics; the scatter, heatmap and correlation
views from the distinct configs evaluated (:class:`~quantsearch.compare.configs.ConfigPoint`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

from quantsearch.compare.configs import ConfigPoint
from quantsearch.compare.result import ComparisonResult
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

__all__ = ["correlation", "curve_figures", "heatmap", "plot_metrics", "point_figures", "scatter"]


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
    statistics of values seen before, so a report of unchanged data does not import SciPy.
    """
    pts = [p for p in points if p.ok and x in p.metrics and y in p.metrics]
    xs = [float(p.metrics[x]) for p in pts]
    ys = [float(p.metrics[y]) for p in pts]
    if len(pts) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return None
    key = hashlib.sha1(repr((xs, ys)).encode()).hexdigest()
    stats = memo.get(key) if memo is not None else None
    if stats is None:
        # scipy takes a second to import: deferred so that importing the report stays light.
        from scipy import stats as sp

        stats = [float(v) for v in (*sp.spearmanr(xs, ys), *sp.kendalltau(xs, ys))]
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


def scatter(
    points: Sequence[ConfigPoint],
    objectives: Sequence[str],
    baseline: Mapping[str, float],
    best_hashes: set[str],
    title: str,
) -> tuple[ScatterPlot, list[ConfigPoint]] | None:
    """Every completed config in the two :func:`plot_metrics`, and the front's configs."""
    xm, ym = plot_metrics(points, objectives)
    pts = [p for p in points if p.ok and xm in p.metrics and ym in p.metrics]
    if not pts or xm == ym:
        return None
    xs = [float(p.metrics[xm]) for p in pts]
    ys = [float(p.metrics[ym]) for p in pts]
    feas = [p.feasible is not False for p in pts]
    on = _front_flags(xs, ys, feas, metric_direction(xm), metric_direction(ym))
    base = (float(baseline[xm]), float(baseline[ym])) if xm in baseline and ym in baseline else None
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
) -> list[Figure]:
    """The Pareto view, the front's bitwidths and the accuracy / loss correlation (``corr``)."""
    figs: list[Figure] = []
    n_ok = sum(1 for p in points if p.ok)
    sc = scatter(
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
        xm, ym = plot_metrics(points, objectives)
        hm = heatmap(front, xm, ym, f"Per-layer bitwidths of the {len(front)} front configs")
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


def curve_figures(cmp: ComparisonResult, single: bool) -> list[Figure]:
    """Best so far (or hypervolume ratio) against trials and against distinct evaluations (the
    second left out for a single run whose trials were all distinct evaluations: the same curve)."""
    pareto = cmp.mode == "pareto"
    ref = reference_words(cmp)
    who = "this run" if single else f"median and IQR over {len(cmp.seeds)} seeds"
    reference: float | None
    if pareto:
        ylabel = "hypervolume / reference front's hypervolume (fraction)"
        reference, label, stem, what = 1.0, f"{ref} (1.0)", "hypervolume", "Hypervolume"
    else:
        ylabel = "best feasible objective so far (weighted sum, dimensionless)"
        reference = cmp.optimum
        label = f"{ref} ({cmp.optimum:.4f})" if cmp.optimum is not None else ref
        stem, what = "best", "Best so far"

    def series(s: StrategyStats) -> str:
        return f"{s.strategy} (seed {cmp.seeds[0]})" if single else f"{s.strategy} (median, IQR)"

    by_trial = tuple((series(s), s.by_trial) for s in cmp.stats)
    by_eval = tuple((series(s), s.by_evaluation) for s in cmp.stats)
    # A run whose every trial was a new config draws the same curve twice: a table serves.
    same = single and all(repr(s.by_trial) == repr(s.by_evaluation) for s in cmp.stats)
    figures = [
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
    return figures[:1] if same else figures
