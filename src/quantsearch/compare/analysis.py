"""Finished runs measured against one reference: :func:`compare_results`.

The *reference* is the true optimum or true Pareto front when a ground-truth run evaluated
every point of the space; otherwise it is the best value (or front) that any run of the
comparison found, and it is labelled so.

Hypervolume reference point: objectives to maximise are negated so that all are minimised; then
for each objective ``r_i = w_i + 0.1 * (w_i - b_i)``, where ``w_i`` and ``b_i`` are the worst and
best value over every feasible config the comparison evaluated (``0.1 * max(|w_i|, 1)`` when
they are equal). Every run is measured against the same point.

Per strategy, each measure is summarised over seeds by its median and interquartile range
(:mod:`quantsearch.compare.summary`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from quantsearch.compare.measures import (
    Mode,
    Target,
    counted_trials,
    evaluation_flags,
    feasible_values,
    measure_run,
)
from quantsearch.compare.result import ComparisonResult
from quantsearch.compare.summary import auto_budgets, strategy_stats
from quantsearch.errors import ConfigError
from quantsearch.search.pareto import (
    hypervolume,
    hypervolume_reference_point,
    pareto_front,
    to_loss,
)
from quantsearch.search.results import SearchResult
from quantsearch.search.trial import TrialInfo

__all__ = ["Goal", "compare_results", "prefix_overlap", "reference_target"]


@dataclass(frozen=True)
class Goal:
    """What the runs are measured against, and the reference it came from."""

    target: Target
    optimum: float | None = None
    optimum_configs: tuple[str, ...] = ()
    front: tuple[tuple[float, ...], ...] = ()


def reference_target(
    points: Sequence[TrialInfo], mode: Mode, directions: Sequence[str], tolerance: float
) -> Goal:
    """The reference from every distinct evaluated trial ``points`` (feasible ones count)."""
    feas = [(t, v) for t in points if (v := feasible_values(t)) is not None]
    if mode == "weighted_sum":
        if not feas:
            return Goal(Target(mode, None, tolerance))
        opt = max(v[0] for _, v in feas)
        hashes = tuple(sorted({t.config_hash for t, v in feas if v[0] == opt and t.config_hash}))
        return Goal(Target(mode, opt, tolerance), opt, hashes)
    if not feas:
        return Goal(Target(mode, None, tolerance, tuple(directions)))
    values = [v for _, v in feas]
    ref = hypervolume_reference_point([to_loss(v, directions) for v in values])
    groups: dict[tuple[float, ...], set[str]] = {}
    for i in pareto_front(values, directions):
        t, v = feas[i]
        groups.setdefault(v, set()).update([t.config_hash] if t.config_hash else [])
    front = tuple(sorted(groups))
    ref_hv = hypervolume([to_loss(v, directions) for v in front], ref)
    target = Target(
        mode,
        None,
        tolerance,
        tuple(directions),
        ref,
        ref_hv,
        tuple(frozenset(groups[v]) for v in front),
    )
    return Goal(target, front=front)


def prefix_overlap(results: Sequence[SearchResult]) -> list[dict[str, Any]]:
    """Per pair of strategies: how many leading trials had the same configs, seed by seed."""
    seqs: dict[tuple[str, int], list[str | None]] = {
        (r.strategy, r.seed): [t.config_hash for t in counted_trials(r.trials)] for r in results
    }
    names = list(dict.fromkeys(r.strategy for r in results))
    out: list[dict[str, Any]] = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            seeds = [s for (n, s) in seqs if n == a and (b, s) in seqs]
            lengths, identical = [], True
            for s in seeds:
                x, y = seqs[(a, s)], seqs[(b, s)]
                k = 0
                while k < min(len(x), len(y)) and x[k] == y[k]:
                    k += 1
                lengths.append(k)
                identical = identical and x == y
            if seeds:
                out.append({"a": a, "b": b, "lengths": lengths, "identical": identical})
    return out


def compare_results(
    results: Sequence[SearchResult],
    *,
    ground_truth: SearchResult | None = None,
    tolerance: float = 0.0,
    budgets: Sequence[int] = (),
    n_trials: int | None = None,
    evaluations: int | None = None,
    shared_cache: bool = True,
    budget_unit: str = "trials",
    noise: float = 0.0,
    noisy_metrics: Sequence[str] = (),
) -> ComparisonResult:
    """Measure finished runs (one :class:`SearchResult` per strategy and seed).

    Args:
        results: the runs, all on the same space, objective and constraints.
        ground_truth: a run that evaluated every point (the reference is then exact).
        tolerance: "reached the optimum" means within this of it (pareto: a hypervolume ratio
            of at least ``1 - tolerance``).
        budgets: trial counts for the simple regret; ``()`` picks :func:`auto_budgets`.
        n_trials: the trial budget each run had (default: the longest run).
        evaluations: distinct evaluations the comparison cost (default: the per-run sum).
        shared_cache: whether the runs shared one cache (recorded, for the report).
        budget_unit: what ``budgets`` count: ``trials``, or ``evaluations`` (distinct ones, when
            every run had an evaluation budget, ``n_evaluations``).
        noise: objective differences below this are within the spread of ``noisy_metrics``
            (:func:`~quantsearch.search.objective.objective_noise`): a run within it of the
            optimum reached it (the tolerance is at least the noise).
    """
    if not results:
        raise ConfigError("compare: no runs to compare (strategies and seeds must not be empty)")
    first = ground_truth or results[0]
    mode: Mode = "weighted_sum" if first.combine == "weighted_sum" else "pareto"
    directions = tuple(first.directions)
    everything = [*([ground_truth] if ground_truth else []), *results]
    seen: set[str] = set()
    points = []
    for r in everything:
        for t in counted_trials(r.trials):
            if t.config_hash is not None and t.config_hash not in seen:
                seen.add(t.config_hash)
                points.append(t)
    ref = reference_target(points, mode, directions, max(tolerance, noise))
    target = ref.target
    n = n_trials or max(len(counted_trials(r.trials)) for r in results)
    space_size = first.space_size
    # A run has seen the whole space when it met every distinct config: with "auto" choices two
    # points can be one config, and the enumeration says how many there are.
    configs = space_size
    if ground_truth is not None:
        met = {t.config_hash for t in counted_trials(ground_truth.trials) if t.config_hash}
        configs = min(space_size, len(met)) if met else space_size
    measured: dict[str, int] = {}  # config -> samples of its evaluation, by whichever run
    for r in everything:
        for t in counted_trials(r.trials):
            if t.evaluated and t.config_hash is not None and t.samples:
                measured.setdefault(t.config_hash, t.samples)
    runs = [
        measure_run(
            r.trials,
            target,
            strategy=r.strategy,
            seed=r.seed,
            space_size=configs,
            measured=measured,
        )
        for r in results
    ]
    longest = max(m.evaluations for m in runs) if budget_unit == "evaluations" else n
    budgets = tuple(sorted(set(budgets))) or auto_budgets(longest, space_size)
    strategies = tuple(dict.fromkeys(r.strategy for r in results))
    stats = [
        strategy_stats(s, [m for m in runs if m.strategy == s], target, budgets, n, budget_unit)
        for s in strategies
    ]
    unshared = sum(sum(evaluation_flags(counted_trials(r.trials))) for r in everything)
    return ComparisonResult(
        mode=mode,
        strategies=strategies,
        seeds=tuple(dict.fromkeys(r.seed for r in results)),
        n_trials=n,
        space_size=space_size,
        budgets=budgets,
        tolerance=tolerance,
        shared_cache=shared_cache,
        objective_names=tuple(first.objective_names),
        directions=directions,
        baseline=dict(first.baseline),
        reference="exhaustive" if ground_truth is not None else "best_found",
        optimum=ref.optimum,
        optimum_configs=ref.optimum_configs,
        front=ref.front,
        reference_point=target.reference_point,
        reference_hypervolume=target.reference_hypervolume,
        evaluations=evaluations if evaluations is not None else unshared,
        evaluations_unshared=unshared,
        stats=stats,
        runs=runs,
        prefix_overlap=prefix_overlap(results),
        results=list(results),
        ground_truth=ground_truth,
        budget_unit=budget_unit,
        noise=noise,
        noisy_metrics=tuple(noisy_metrics),
    )
