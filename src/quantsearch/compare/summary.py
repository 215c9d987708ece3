"""One strategy's runs summarised over seeds: median and IQR of every measure, and curves.

At fixed trial budgets the simple regret is the optimum minus best so far (pareto: one minus
the hypervolume ratio); a run that saw every point of the space keeps its final value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from quantsearch.compare.measures import RunMetrics, Target
from quantsearch.compare.stats import Curve, Quartiles, median_curve, with_tail

__all__ = ["StrategyStats", "auto_budgets", "strategy_stats", "value_at"]


@dataclass(frozen=True)
class StrategyStats:
    """One row of the comparison table: a strategy's measures over its seeds.

    ``at_budget[b]`` is the simple regret after ``b`` trials (pareto: one minus the hypervolume
    ratio); ``final`` the best objective (pareto: hypervolume ratio) at the end of the runs.
    """

    strategy: str
    runs: int
    reached: int  # runs that reached the optimum within their trials
    trials_to_optimum: Quartiles
    evaluations_to_optimum: Quartiles
    at_budget: dict[int, Quartiles]
    final: Quartiles
    duplicate_share: Quartiles
    evaluations: Quartiles
    trials: Quartiles
    front_share: Quartiles | None
    by_trial: Curve
    by_evaluation: Curve


def auto_budgets(n_trials: int, space_size: int) -> tuple[int, ...]:
    """A quarter, half and all of ``min(space size, n_trials)``, and ``n_trials``.

    Example:
        >>> auto_budgets(48, 16)
        (4, 8, 16, 48)
    """
    base = max(1, min(space_size, n_trials))
    return tuple(sorted({math.ceil(base / 4), math.ceil(base / 2), base, n_trials}))


def value_at(run: RunMetrics, budget: int, unit: str = "trials") -> float | None:
    """Quality after ``budget`` trials (``unit="evaluations"``: distinct evaluations); a run
    that exhausted the space keeps its final value; ``None`` when the run stopped before."""
    q = run.quality_by_trial if unit == "trials" else run.quality_by_evaluation
    if budget <= len(q):
        return q[budget - 1]
    if run.exhausted and q:
        return q[-1]
    return None


def _extended(run: RunMetrics, length: int) -> tuple[float, ...]:
    q = run.quality_by_trial
    if run.exhausted and q and len(q) < length:
        return q + (q[-1],) * (length - len(q))
    return q


def strategy_stats(
    strategy: str,
    runs: Sequence[RunMetrics],
    target: Target,
    budgets: Sequence[int],
    n: int,
    unit: str = "trials",
) -> StrategyStats:
    """Summarise one strategy's ``runs`` (of ``n`` trials each) against ``target``; ``budgets``
    count ``unit`` (trials, or distinct evaluations)."""
    inf = math.inf
    at_budget = {}
    for b in budgets:
        vals = [v for r in runs if (v := value_at(r, b, unit)) is not None]
        at_budget[b] = Quartiles.of([target.regret(v) for v in vals])
    longest = max((len(r.quality_by_evaluation) for r in runs), default=0)
    # Past the longest run every run has stopped, the exhausted ones at their final values:
    # the curve is flat from there to n, so it gets one point there and one at n (a step
    # drawn after each point draws the same line), not one per trial: a budget far beyond
    # the space (--trials 2**31 on 16 configs) costs no memory.
    drawn = min(n, max((len(r.quality_by_trial) for r in runs), default=0) + 1)
    return StrategyStats(
        strategy=strategy,
        runs=len(runs),
        reached=sum(1 for r in runs if r.trials_to_optimum is not None),
        trials_to_optimum=Quartiles.of(
            [inf if r.trials_to_optimum is None else r.trials_to_optimum for r in runs]
        ),
        evaluations_to_optimum=Quartiles.of(
            [inf if r.evaluations_to_optimum is None else r.evaluations_to_optimum for r in runs]
        ),
        at_budget=at_budget,
        final=Quartiles.of([r.quality_by_trial[-1] if r.quality_by_trial else -inf for r in runs]),
        duplicate_share=Quartiles.of([r.duplicate_share for r in runs]),
        evaluations=Quartiles.of([r.evaluations for r in runs]),
        trials=Quartiles.of([r.trials for r in runs]),
        front_share=Quartiles.of([r.front_share or 0.0 for r in runs])
        if target.mode == "pareto"
        else None,
        by_trial=with_tail(median_curve([_extended(r, drawn) for r in runs], drawn), n),
        by_evaluation=median_curve([r.quality_by_evaluation for r in runs], longest),
    )
