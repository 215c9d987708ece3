"""Which strategy is ahead at each budget, and whether paired seeds say so significantly.

At each budget ``b`` every run's simple regret is taken (the reference minus its best feasible
objective after ``b`` trials, or ``b`` distinct evaluations when the comparison budgets in
evaluations; pareto: one minus the hypervolume ratio). The strategy with the lowest median
regret leads (ties: the lower mean, then the name). The leader is tested against every other
strategy over the seeds both ran to ``b``: the paired regret differences go to the Wilcoxon
signed-rank test (``scipy.stats.wilcoxon``'s p-value, two-sided, zero differences dropped, exact
for small samples; computed by :mod:`quantsearch.compare.wilcoxon` without importing SciPy); a
difference is called significant at ``ALPHA``. With every difference zero the two are identical
there and no test is made. A run with no feasible config yet has
infinite regret: it ranks below every finite one.

Repeated-trial shares are compared over an equal number of trials: the first ``m`` trials of
every run, ``m`` the length of the shortest run (:func:`repeated_shares`).
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from quantsearch.compare.measures import RunMetrics, Target
from quantsearch.compare.result import ComparisonResult
from quantsearch.compare.stats import Quartiles
from quantsearch.compare.summary import value_at
from quantsearch.compare.wilcoxon import wilcoxon_p

__all__ = ["ALPHA", "BudgetRanking", "PairedTest", "rank_at_budgets", "repeated_shares"]

ALPHA = 0.05  # significance level of the paired tests


@dataclass(frozen=True)
class PairedTest:
    """The leader against ``other`` over ``n`` paired seeds.

    ``p`` is Wilcoxon's two-sided p-value (``None``: every difference was zero, or no seeds);
    ``wins`` the seeds where the leader's regret was lower, ``losses`` higher.
    """

    other: str
    n: int
    wins: int
    losses: int
    p: float | None

    @property
    def significant(self) -> bool:
        return self.p is not None and self.p < ALPHA


@dataclass(frozen=True)
class BudgetRanking:
    """The strategies at one budget, lowest median regret first."""

    budget: int
    unit: str  # "trials" or "evaluations"
    medians: tuple[tuple[str, float], ...]  # (strategy, median regret), ascending
    tests: tuple[PairedTest, ...]  # the leader against each other strategy

    @property
    def leader(self) -> str:
        return self.medians[0][0]

    @property
    def tied(self) -> tuple[str, ...]:
        """Strategies whose median regret equals the leader's (the leader included)."""
        best = self.medians[0][1]
        return tuple(s for s, m in self.medians if m == best)


def _regrets(
    runs: Sequence[RunMetrics], target: Target, budget: int, unit: str
) -> dict[int, float]:
    out = {}
    for r in runs:
        v = value_at(r, budget, unit)
        if v is not None:
            out[r.seed] = target.regret(v)  # inf: no feasible config yet
    return out


def _wilcoxon(
    a: Sequence[float], b: Sequence[float], memo: dict[str, list[float]] | None = None
) -> float | None:
    if not a or all(x == y for x, y in zip(a, b, strict=True)):
        return None
    key = hashlib.sha1(repr(("wilcoxon", list(a), list(b))).encode()).hexdigest()
    if memo is not None and len(memo.get(key, ())) == 1:
        return float(memo[key][0])  # computed for an earlier report
    # A run with no feasible config yet has infinite regret: the test uses ranks, so it stands
    # in as one more than the largest finite regret (worse than every finite one).
    finite = [x for x in (*a, *b) if math.isfinite(x)]
    cap = (max(finite) if finite else 0.0) + 1.0
    x = [v if math.isfinite(v) else cap for v in a]
    y = [v if math.isfinite(v) else cap for v in b]
    if x == y:
        return None
    p = wilcoxon_p(x, y)
    if memo is not None:
        memo[key] = [p]
    return p


def rank_at_budgets(
    cmp: ComparisonResult, memo: dict[str, list[float]] | None = None
) -> list[BudgetRanking]:
    """One :class:`BudgetRanking` per budget of ``cmp`` (needs at least two strategies).

    ``memo`` keeps the p-values already computed, by digest of the paired regrets (a report
    keeps it in its run directory), so ranking an unchanged comparison again computes none.
    """
    if len(cmp.strategies) < 2:
        return []
    target = Target(cmp.mode, cmp.optimum)
    out = []
    for b in cmp.budgets:
        by_strategy = {
            s: _regrets([r for r in cmp.runs if r.strategy == s], target, b, cmp.budget_unit)
            for s in cmp.strategies
        }
        scored = [
            (s, statistics.median(v.values()), statistics.fmean(v.values()))
            for s, v in by_strategy.items()
            if v and not any(math.isnan(x) for x in v.values())
        ]
        if len(scored) < 2:
            continue
        scored.sort(key=lambda t: (t[1], t[2], t[0]))
        leader = by_strategy[scored[0][0]]
        tests = []
        for s, _, _ in scored[1:]:
            seeds = sorted(set(leader) & set(by_strategy[s]))
            a = [leader[k] for k in seeds]
            o = [by_strategy[s][k] for k in seeds]
            tests.append(
                PairedTest(
                    other=s,
                    n=len(seeds),
                    wins=sum(x < y for x, y in zip(a, o, strict=True)),
                    losses=sum(x > y for x, y in zip(a, o, strict=True)),
                    p=_wilcoxon(a, o, memo),
                )
            )
        out.append(
            BudgetRanking(b, cmp.budget_unit, tuple((s, m) for s, m, _ in scored), tuple(tests))
        )
    return out


def repeated_shares(cmp: ComparisonResult) -> tuple[int, dict[str, Quartiles]]:
    """The share of repeated configs among the first ``m`` trials of every run, per strategy
    (median and IQR over seeds), ``m`` the shortest run's trial count."""
    runs = [r for r in cmp.runs if r.new_by_trial]
    if not runs:
        return 0, {}
    m = min(len(r.new_by_trial) for r in runs)
    if m == 0:
        return 0, {}
    shares: dict[str, list[float]] = {}
    for r in runs:
        shares.setdefault(r.strategy, []).append(1 - sum(r.new_by_trial[:m]) / m)
    return m, {s: Quartiles.of(v) for s, v in shares.items()}
