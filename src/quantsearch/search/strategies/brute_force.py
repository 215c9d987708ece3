"""Brute force: every point of a finite space exactly once, in the space's stable order.

Optuna's own ``BruteForceSampler`` walks a tree of suggested values in random order and can
repeat points that are running in parallel; this one proposes the first point (in the order of
:meth:`SearchSpace.enumerate`) that no finished or running trial holds, and, across workers, only
a point it could claim, so N workers on one study cover the space exactly once between them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from quantsearch.search import optuna_compat
from quantsearch.search.strategies.base import (
    Space,
    SpaceSampler,
    Strategy,
    StrategyContext,
    pass_options,
)
from quantsearch.search.trial import TrialInfo

__all__ = ["BruteForceSampler"]


class BruteForceSampler(SpaceSampler):
    """Proposes unvisited points of ``space`` in its stable order.

    Args:
        space: the finite space to enumerate.
        claim_point: optional atomic cross-worker claim of a point index; a point whose claim
            fails is skipped. Without it, only this study's trials are consulted.
    """

    def __init__(self, space: Space, claim_point: Callable[[int, int], bool] | None = None) -> None:
        super().__init__(space, seed=0)
        self._claim = claim_point
        self._cursor = 0

    def _visited(self, study: Study, trial: FrozenTrial) -> set[int]:
        visited: set[int] = set()
        states = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING, TrialState.FAIL)
        for t in optuna_compat.study_trials(study, states):
            # A trial failed by a dead worker is not visited: its point is retried.
            if t.number == trial.number or not TrialInfo.from_trial(t).is_visited:
                continue
            if len(t.params) == len(self._space.knobs):
                visited.add(self._space.index_of(self._space.decode(t.params)))
        return visited

    def propose(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        visited = self._visited(study, trial)
        size = self._space.size
        index = self._cursor
        while index < size:
            if index not in visited and (self._claim is None or self._claim(index, trial.number)):
                break
            index += 1
        if index >= size:
            # Every point is taken; re-propose the first (the cache answers it at no cost) and
            # let the study loop stop on exhaustion.
            index = 0
        else:
            self._cursor = index + 1
        return self._space.encode(self._space.point(index), "categorical")


def _build(ctx: StrategyContext) -> BaseSampler:
    return pass_options(
        BruteForceSampler, ctx, {"space": ctx.space, "claim_point": ctx.claim_point}
    )


STRATEGY = Strategy(
    "brute_force",
    _build,
    "every point exactly once, in stable order (finite spaces only)",
    aliases=("brute-force", "exhaustive"),
    exhaustive=True,
)
