"""Brute force: every point of a finite space exactly once, in the space's stable order.

Optuna's own ``BruteForceSampler`` walks a tree of suggested values in random order and can
repeat points that are running in parallel; this one proposes the first point (in the order of
:meth:`SearchSpace.enumerate`) that no finished or running trial holds, and, across workers, only
a point it could claim, so N workers on one study cover the space exactly once between them.
Of points that are one config (an ``"auto"`` choice beside the explicit one it calibrates to,
:func:`~quantsearch.search.strategies.base.config_aliases`) it visits the first only.

The stable order follows the order in which the config lists each knob's choices, so the trial
at which brute force meets the optimum depends on that listing, and not on the seed. With the
option ``shuffle = true`` it walks a seeded random order instead: position ``i`` visits point
``permute(i)``, a bijection of the space's indices (a four-round Feistel network keyed by the
seed, cycle-walked back into range), which needs no list of the points, however large the
space.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from quantsearch.errors import ConfigError
from quantsearch.search import optuna_compat
from quantsearch.search.strategies.base import (
    Space,
    SpaceSampler,
    Strategy,
    StrategyContext,
    pass_options,
)
from quantsearch.search.strategies.options import Option
from quantsearch.search.trial import TrialInfo

__all__ = ["BruteForceSampler", "permute"]


def permute(index: int, size: int, seed: int) -> int:
    """The point visited at position ``index`` of a seeded random order of ``range(size)``.

    Example:
        >>> sorted(permute(i, 10, seed=3) for i in range(10)) == list(range(10))
        True
    """
    bits = max(2, (size - 1).bit_length())
    bits += bits % 2
    half = bits // 2
    mask = (1 << half) - 1
    x = index
    while True:  # cycle-walking: 2**bits < 4 * size, so a few steps at most on average
        left, right = x >> half, x & mask
        for r in range(4):
            digest = hashlib.blake2b(f"{seed}:{r}:{right}".encode(), digest_size=8).digest()
            left, right = right, left ^ (int.from_bytes(digest, "big") & mask)
        x = (left << half) | right
        if x < size:
            return x


class BruteForceSampler(SpaceSampler):
    """Proposes unvisited points of ``space`` in its stable order.

    Args:
        space: the finite space to enumerate.
        claim_point: optional atomic cross-worker claim of a point index; a point whose claim
            fails is skipped. Without it, only this study's trials are consulted.
        shuffle: walk a random order drawn from ``seed`` instead of the stable one.
        seed: the study's seed (used only when ``shuffle``).
        resolve: the evaluator's resolver: of points that are one config (``"auto"`` beside
            the choice it calibrates to) only the first is visited.
    """

    def __init__(
        self,
        space: Space,
        claim_point: Callable[[int, int], bool] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        resolve: Callable[[Any], Any] | None = None,
    ) -> None:
        if not isinstance(shuffle, bool):
            raise ConfigError(
                f"search.strategy.options.shuffle: got {shuffle!r}, allowed: true or false"
            )
        super().__init__(space, seed=0, resolve=resolve)
        self._claim = claim_point
        self._cursor = 0
        self._shuffle, self._seed = bool(shuffle), seed

    def _point_at(self, position: int) -> int:
        if not self._shuffle:
            return position
        return permute(position, self._space.size, self._seed)

    def _visited(self, study: Study, number: int | None) -> set[int]:
        visited: set[int] = set()
        states = (
            TrialState.COMPLETE,
            TrialState.RUNNING,
            TrialState.WAITING,
            TrialState.FAIL,
            TrialState.PRUNED,
        )
        for t in optuna_compat.study_trials(study, states):
            # A trial failed by a dead worker is not visited: its point is retried.
            if t.number == number or not TrialInfo.from_trial(t).is_visited:
                continue
            params = self.params_of(t)
            if len(params) == len(self._space.knobs):
                visited.add(self._index(self._space.decode(params)))
        return visited

    def _index(self, choice: dict[str, int]) -> int:
        """The index of the point that stands for ``choice``'s config."""
        if self._aliases is None:
            return self._space.index_of(choice)
        point = self.canonical([choice[k.name] for k in self._space.knobs])
        return self._space.index_of(
            {k.name: c for k, c in zip(self._space.knobs, point, strict=True)}
        )

    def propose(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        visited = self._visited(study, trial.number)
        index = self._next(visited, lambda i: self._claim is None or self._claim(i, trial.number))
        return self._space.encode(self._space.point(index), "categorical")

    def propose_batch(self, study: Study, k: int) -> list[dict[str, int]]:
        """The points (knob -> choice index) of the next ``k`` trials, as ``k`` calls of
        :meth:`propose` would give them one trial after another, for a study of one process
        (no claims): the batched trial path (:mod:`quantsearch.search.batch`)."""
        if self._claim is not None:
            raise RuntimeError("brute force proposes batches for one process only")
        visited = self._visited(study, None)
        out = []
        for _ in range(k):
            index = self._next(visited, lambda i: True)
            visited.add(index)
            out.append(self._space.point(index))
        return out

    def _next(self, visited: set[int], claim: Callable[[int], bool]) -> int:
        """The first unvisited point from the cursor on that ``claim`` takes; the cursor moves
        past it. Every point taken: the first one again (the cache answers it at no cost, and
        the study loop stops on exhaustion)."""
        size = self._space.size
        position = self._cursor
        while position < size:
            index = self._point_at(position)
            if index not in visited and self._stands_for_itself(index) and claim(index):
                self._cursor = position + 1
                return index
            position += 1
        return self._point_at(0)

    def _stands_for_itself(self, index: int) -> bool:
        """Whether point ``index`` is the one visited for its config (of points one config
        apart, only that one is)."""
        return self._aliases is None or self._index(self._space.point(index)) == index


def _build(ctx: StrategyContext) -> BaseSampler:
    return pass_options(
        BruteForceSampler,
        ctx,
        {
            "space": ctx.space,
            "claim_point": ctx.claim_point,
            "seed": ctx.seed,
            "resolve": None if ctx.evaluator is None else ctx.evaluator.resolve,
        },
    )


STRATEGY = Strategy(
    "brute_force",
    _build,
    "every point exactly once, in stable order (finite spaces only)",
    aliases=("brute-force", "exhaustive"),
    exhaustive=True,
    options={"shuffle": Option("bool")},
)
