"""Local search: hill climbing over per-layer precisions, with random restarts.

Mixed-precision spaces have structure that generic samplers ignore: every knob's choices are
ordered by cost (bits), and the objective changes smoothly when one layer moves one step up or
down. This strategy starts from the dearest point (every knob at its most precise choice, the
one closest to the float model), then always proposes an unvisited neighbour of the best
feasible point found so far. A step is one *cost level*: a run of choices with the same bits per
element (``fixed(16,8)``, ``fixed(16,12)``) is one level, so the neighbours of a knob's choice
are the choices of the next cheaper level, the other choices of its own level, and those of the
next dearer level, proposed in that order: every knob one level cheaper before any same-cost
or dearer move (within a level, the choice at the nearest relative position first; knobs in a
seeded order). A 16-bit start therefore leaves 16 bits on its first move instead of wandering
over equal-cost 16-bit choices that cannot improve a cost objective. When every neighbour of
the incumbent has been visited it is a local optimum, and the next proposal is a random
unvisited point, from which the climb goes on. Single objective only (weighted sum); it never
proposes a point twice, nor two points of one config, while an unvisited one is left.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from optuna.samplers import BaseSampler
from optuna.study import Study, StudyDirection
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

__all__ = ["LocalSearchSampler"]


class LocalSearchSampler(SpaceSampler):
    """Best-so-far hill climbing over cheapest-first choice indices, with random restarts.

    Args:
        space: the finite space (its knobs' choices ordered by cost).
        seed: seeds the neighbour order and the restarts.
    """

    encoding = "ordinal"

    def __init__(
        self, space: Space, seed: int | None = None, resolve: Callable[[Any], Any] | None = None
    ) -> None:
        super().__init__(space, seed=seed, resolve=resolve)
        self._rng = np.random.default_rng(seed)
        self._levels = [_cost_levels(space, i) for i in range(len(space.knobs))]
        # per knob, per ordinal: the ordinal that stands for its config (SpaceSampler.canonical)
        self._stands = [
            tuple(k.by_cost.index(a[k.by_cost[o]]) for o in range(k.size))
            for k, a in zip(space.knobs, self._aliases or [], strict=False)
        ]

    def _own(self, point: tuple[int, ...]) -> tuple[int, ...]:
        """The point (ordinals) that stands for ``point``'s config: of points that are one
        config (``"auto"`` beside the choice it calibrates to) only that one is proposed."""
        if not self._stands:
            return point
        return tuple(s[o] for s, o in zip(self._stands, point, strict=True))

    @staticmethod
    def _score(t: FrozenTrial, sign: float) -> tuple[int, float]:
        """Larger is better: every feasible point above every infeasible one."""
        feasible = TrialInfo.from_trial(t).feasible is not False
        return (1 if feasible else 0, sign * t.values[0])

    def propose(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        knobs = self._space.knobs
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        seen: set[tuple[int, ...]] = set()
        best: tuple[tuple[int, float], int, tuple[int, ...]] | None = None
        for t in optuna_compat.study_trials(study):
            params = self.params_of(t)
            if t.number == trial.number or len(params) != len(knobs):
                continue
            point = self._own(tuple(int(params[k.name]) for k in knobs))
            seen.add(point)
            # a failed config is COMPLETE too, and scores as infeasible
            if t.state == TrialState.COMPLETE and t.values is not None:
                candidate = (self._score(t, sign), -t.number, point)
                if best is None or candidate > best:
                    best = candidate
        if best is None:
            start = self._own(tuple(k.size - 1 for k in knobs))  # the dearest: nearest float
            if start not in seen:
                return self._encode(start)
            return self._restart(seen)
        current = best[2]
        moves = []  # (kind, rank within the knob's moves, knob order, point)
        for order, i in enumerate(self._rng.permutation(len(knobs))):
            for kind, ordinals in enumerate(self._neighbours(i, current[i])):
                for rank, j in enumerate(ordinals):
                    moves.append((kind, rank, order, (*current[:i], j, *current[i + 1 :])))
        for *_, point in sorted(moves, key=lambda m: m[:3]):
            if point not in seen and self._own(point) == point:
                return self._encode(point)
        return self._restart(seen)

    def _neighbours(self, knob: int, j: int) -> tuple[list[int], list[int], list[int]]:
        """Ordinals of the next cheaper level, the rest of ``j``'s level, the next dearer level,
        each nearest relative position first."""
        levels = self._levels[knob]
        at = next(k for k, level in enumerate(levels) if j in level)
        level = levels[at]
        position = level.index(j) / max(len(level) - 1, 1)

        def nearest(ordinals: list[int]) -> list[int]:
            span = max(len(ordinals) - 1, 1)
            ranked = sorted((abs(r / span - position), o) for r, o in enumerate(ordinals))
            return [o for _, o in ranked]

        cheaper = nearest(levels[at - 1]) if at > 0 else []
        dearer = nearest(levels[at + 1]) if at + 1 < len(levels) else []
        same = sorted((o for o in level if o != j), key=lambda o: abs(o - j))
        return cheaper, same, dearer

    def _restart(self, seen: set[tuple[int, ...]]) -> dict[str, Any]:
        sizes = [k.size for k in self._space.knobs]
        total = self._space.size
        for _ in range(64):  # rejection sampling: cheap while most of the space is unvisited
            point = self._own(tuple(int(self._rng.integers(0, n)) for n in sizes))
            if point not in seen:
                return self._encode(point)
        if total <= 1_000_000:  # nearly exhausted: take the first unvisited point in order
            for choice in self._space.enumerate():
                point = tuple(self._space.encode(choice, "ordinal").values())
                if point not in seen and self._own(point) == point:
                    return self._encode(point)
        return self._encode(point)  # every point visited: a repeat, answered by the cache

    def _encode(self, point: tuple[int, ...]) -> dict[str, Any]:
        return {k.name: v for k, v in zip(self._space.knobs, point, strict=True)}


def _cost_levels(space: Space, knob: int) -> list[list[int]]:
    """A knob's ordinals (cheapest first) grouped into runs of equal bits per element (an
    ``"auto"`` binary point does not change a choice's bits, so ``fixed(8,auto)`` and
    ``fixed(8,4)`` are one level)."""
    k = space.knobs[knob]
    bits: list[float] = []
    for j in range(k.size):
        params = {other.name: 0 for other in space.knobs} | {k.name: j}
        bits.append(k.bits[space.decode(params)[k.name]])
    levels: list[list[int]] = []
    for j, b in enumerate(bits):
        if levels and bits[levels[-1][-1]] == b:
            levels[-1].append(j)
        else:
            levels.append([j])
    return levels


def _build(ctx: StrategyContext) -> BaseSampler:
    resolve = None if ctx.evaluator is None else ctx.evaluator.resolve
    return pass_options(
        LocalSearchSampler, ctx, {"space": ctx.space, "seed": ctx.seed, "resolve": resolve}
    )


STRATEGY = Strategy(
    "local",
    _build,
    "hill climbing over per-layer precisions from the most precise point, with random restarts",
    encoding="ordinal",
    multi_objective=False,
)
