"""Random search whose trials can be proposed K at a time: Optuna's ``RandomSampler``, draw for
draw.

``RandomSampler.sample_independent`` draws one uniform number in ``[0, 1)`` per choice of a
categorical parameter from its NumPy random state and takes the choice of the largest
(``_SearchSpaceTransform``'s one-hot encoding); a parameter with one choice draws nothing
(``Trial._suggest`` never asks the sampler). A trial suggests the knobs in the space's order, so
trial after trial the state is read as one stream. :meth:`BatchRandomSampler.propose_batch`
reads the same stream for K trials in one call, so the batched trial path
(:mod:`quantsearch.search.batch`) stores, for a given seed, exactly the parameters the
one-at-a-time path stores for the same trial numbers. Everywhere else (several workers,
``n_jobs > 1``, successive halving, a retried trial) the sampler is Optuna's ``RandomSampler``.

Resuming: Optuna does not persist the random state, so a fresh ``RandomSampler`` on a study that
already has trials starts its stream from the seed again and re-proposes the first trials'
points (all cache hits). This sampler instead first skips the draws the study's finished
trials made (one per choice of each parameter they drew, not counting those an enqueued trial
fixed), on both paths alike: a search stopped and resumed proposes what one uninterrupted run
of the same seed proposes (where the resumed process samples with the study's seed: the
journal default; on a database URL a process loading an existing study seeds apart, as a
joining worker does, so the skip only keeps its stream off the first draws). On a new study there is nothing to skip (trials still running, as
other threads' are, are not counted), so the sampler is Optuna's draw for draw. Trials made by
another sampler or another worker, or a batch interrupted before it was stored, only shift the
stream (it stays a uniform random draw).
"""

from __future__ import annotations

import threading

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from quantsearch.search import optuna_compat
from quantsearch.search.strategies.base import PicklesWithoutLock, Space

__all__ = ["BatchRandomSampler", "draws_of", "one_hot_picks"]

_CHUNK = 1 << 20  # numbers skipped per call when catching up (8 MiB of float64)


def draws_of(trial: FrozenTrial) -> int:
    """How many numbers ``RandomSampler`` drew for ``trial``'s parameters: one per choice of a
    categorical parameter, one for any other, none for a single value or a fixed parameter.

    Example:
        >>> from optuna.distributions import CategoricalDistribution, IntDistribution
        >>> from optuna.trial import create_trial
        >>> t = create_trial(
        ...     params={"a": "x", "b": 2, "c": "z"},
        ...     distributions={"a": CategoricalDistribution(["x", "y", "w"]),
        ...                    "b": IntDistribution(0, 3), "c": CategoricalDistribution(["z"])},
        ...     value=0.0)
        >>> draws_of(t)
        4
    """
    fixed = trial.system_attrs.get("fixed_params") or {}
    return sum(
        _width(d) for name, d in trial.distributions.items() if name not in fixed and not d.single()
    )


def one_hot_picks(rng: np.random.RandomState, sizes: list[int], k: int) -> list[list[int]]:
    """The choice indices that ``k`` trials, each suggesting categorical parameters of
    ``sizes`` choices in order, draw through ``RandomSampler.sample_independent`` from ``rng``:
    per knob, a list of the ``k`` trials' indices.

    Each call draws one number per choice, uniform over the one-hot bounds (all ``[0, 1)``),
    and takes the largest's choice; one call of ``k`` rows of every knob's numbers reads the
    state as the ``k * len(sizes)`` calls do, in the same order.

    Example:
        >>> a, b = np.random.RandomState(0), np.random.RandomState(0)
        >>> one_hot_picks(a, [3, 2], 2)  # knob 0 in trials 0 and 1, then knob 1
        [[1, 2], [0, 0]]
        >>> [[int(b.uniform(np.zeros(n), np.ones(n)).argmax()) for n in (3, 2)] for _ in "ab"]
        [[1, 0], [2, 0]]
    """
    width = sum(sizes)
    u = rng.uniform(np.zeros((k, width)), np.ones((k, width)))
    out, start = [], 0
    for size in sizes:
        out.append(u[:, start : start + size].argmax(axis=1).tolist())
        start += size
    return out


def _width(d: BaseDistribution) -> int:
    return len(d.choices) if isinstance(d, CategoricalDistribution) else 1


class BatchRandomSampler(PicklesWithoutLock, RandomSampler):
    """Optuna's ``RandomSampler`` over a space's knobs (labels), able to propose K trials at once.

    Args:
        space: the finite space whose knobs the trials suggest, in its order, as labels.
        seed: the random state's seed (``None``: from the operating system, as Optuna's).
    """

    def __init__(self, space: Space, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self._space = space
        # (knob, first column, choices) of each knob that draws, in suggest order
        self._blocks: list[tuple[str, int, int]] = []
        width = 0
        for k in space.knobs:
            if k.size > 1:
                self._blocks.append((k.name, width, k.size))
                width += k.size
        self._width = width
        self._single = {k.name: 0 for k in space.knobs if k.size == 1}
        self._caught_up = False
        self._lock = threading.Lock()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        """On the first trial, skip the draws the study's finished trials made (see module)."""
        self._catch_up(study)

    def propose_batch(self, study: Study, k: int) -> list[dict[str, int]]:
        """The points (knob -> choice index) of the study's next ``k`` trials: what ``k`` trials
        suggesting the knobs in order through :meth:`sample_independent` would draw."""
        self._catch_up(study)
        rng = optuna_compat.random_state(self)
        drawn = one_hot_picks(rng, [size for _, _, size in self._blocks], k)
        picks = {name: drawn[j] for j, (name, _, _) in enumerate(self._blocks)}
        names = [knob.name for knob in self._space.knobs]
        return [
            {n: picks[n][i] if n in picks else self._single[n] for n in names} for i in range(k)
        ]

    def _catch_up(self, study: Study) -> None:
        """Once per sampler: draw (and drop) the numbers the study's finished trials drew for
        their parameters."""
        if self._caught_up:
            return
        with self._lock:
            if self._caught_up:
                return
            finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
            n = sum(draws_of(t) for t in study.get_trials(deepcopy=False, states=finished))
            rng = optuna_compat.random_state(self)
            while n > 0:
                rng.uniform(0.0, 1.0, size=min(n, _CHUNK))
                n -= _CHUNK
            self._caught_up = True
