"""TPE's next proposal, both ways, computed while the trial before it is evaluated.

In a study of one process (the batched trial path, one trial a batch), TPE's proposal for trial
``t + 1`` reads trial ``t``'s result only through the split of the trials into "below" (the
``gamma(n)`` best) and "above": once ``t`` is finished, the trials below are either the same
as before (``t`` is above) or the ``gamma(n) - 1`` best of before and ``t``. Everything else
the proposal reads is known when ``t`` is proposed: ``t``'s parameters, the other trials, the
count ``n``, the sampler's random state. So while ``t`` is evaluated (the evaluation's torch
kernels release the GIL), a thread computes both proposals, each from a copy of the random
state; once ``t`` is stored the sampler splits the trials as usual and keeps the proposal of
the split it finds, with that branch's random state: the proposals stay Optuna's, draw for
draw. Where the split is neither branch (``t`` failed, a trial of another worker, a NaN value,
a new search space), or the random state moved, the sampler proposes after the result, as
without this.

:func:`categorical_proposal` is the end of ``TPESampler._sample`` for categorical parameters
(:mod:`~quantsearch.search.strategies.tpe_parzen`, :mod:`~quantsearch.search.strategies.
tpe_choice`), the code both the sampler and the thread run.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution

from quantsearch.search import optuna_compat_tpe
from quantsearch.search.strategies.tpe_choice import clear_choice
from quantsearch.search.strategies.tpe_parzen import categorical_mixture

__all__ = ["Ahead", "categorical_proposal"]

Parzen = tuple[float, Callable[[int], np.ndarray]]  # prior weight, kernel weights function


def categorical_proposal(
    space: dict[str, BaseDistribution],
    choices: Sequence[int],
    x_below: np.ndarray,
    x_above: np.ndarray,
    parzen: Parzen,
    rng: np.random.RandomState,
    n_candidates: int,
) -> dict[str, Any]:
    """``TPESampler._sample``'s proposal from the observations below and above (each by trial
    number) over categorical parameters: the candidates drawn from the mixture below with
    ``rng``, the best by the closed form where it is clear, else by Optuna's log-densities."""
    below = categorical_mixture(x_below, choices, *parzen)
    samples = below.sample(rng, n_candidates)
    chosen = clear_choice(samples, choices, x_below, x_above, *parzen)
    if chosen is not None:  # as TPESampler._sample gives it: a float to each external
        return {n: d.to_external_repr(v) for (n, d), v in zip(space.items(), chosen, strict=True)}
    above = categorical_mixture(x_above, choices, *parzen)
    acquisition = below.log_pdf(samples) - above.log_pdf(samples)
    return optuna_compat_tpe.tpe_best(space, samples, acquisition)


class Ahead:
    """The two proposals the trial after a running one can get (see the module doc), computed
    in a daemon thread started here.

    Args:
        x: the encoded rows of the ``n`` trials before the running one, by trial number (the
            running one is row ``n``); only read.
        x_new: the running trial's encoded row.
        head: the rows of the first ``n_below`` trials of the split's order (complete by
            value, then pruned, then infeasible), in that order, or fewer where there are not
            as many.
        n_below: ``gamma(n + 1)``, the trials below once the running one is finished.
        space, choices, parzen, n_candidates: the proposal's (:func:`categorical_proposal`).
        rng: the sampler's random state; copied, never touched.
    """

    def __init__(
        self,
        x: np.ndarray,
        x_new: np.ndarray,
        head: Sequence[int],
        n_below: int,
        space: dict[str, BaseDistribution],
        choices: Sequence[int],
        parzen: Parzen,
        rng: np.random.RandomState,
        n_candidates: int,
    ) -> None:
        self.n = len(x)
        self.x_new = x_new
        # the rows below, by trial number: the running trial above, then below (the last row)
        self.rows = (
            np.array(sorted(head[:n_below]), dtype=int),
            np.array([*sorted(head[: n_below - 1]), self.n], dtype=int),
        )
        self.state = rng.get_state(legacy=True)
        self._got: list[tuple[dict[str, Any], Any] | None] = [None, None]
        self._done = (threading.Event(), threading.Event())
        self._want = 1  # the last branch the thread computes (-1: none more)
        _worker().put(lambda: self._run(x, space, tuple(choices), parzen, n_candidates))

    def _run(
        self,
        x: np.ndarray,
        space: dict[str, BaseDistribution],
        choices: tuple[int, ...],
        parzen: Parzen,
        n_candidates: int,
    ) -> None:
        rows = np.concatenate([x, self.x_new[np.newaxis]])
        for branch, below in enumerate(self.rows):
            if branch > self._want:
                break
            try:
                keep = np.ones(self.n + 1, dtype=bool)
                keep[below] = False
                rng = np.random.RandomState()
                rng.set_state(self.state)
                params = categorical_proposal(
                    space, choices, rows[below], rows[keep], parzen, rng, n_candidates
                )
                self._got[branch] = (params, rng.get_state(legacy=True))
            except Exception:  # proposed again after the result
                pass
            finally:
                self._done[branch].set()

    def cancel(self) -> None:
        """Neither proposal is wanted: the thread stops after the one it computes."""
        self._want = -1

    def take(self, below: np.ndarray, rng: np.random.RandomState) -> dict[str, Any] | None:
        """The proposal of the split whose rows below (by trial number) are ``below``, with
        ``rng`` set to the state it leaves; ``None`` (``rng`` untouched) where the split is
        neither branch, the proposal failed, or ``rng`` is not the state it was copied from.
        The caller checks that the trials are those it was given plus the running one."""
        branch = 1 if len(below) and below[-1] == self.n else 0
        if not np.array_equal(below, self.rows[branch]):
            self.cancel()
            return None
        self._want = branch
        self._done[branch].wait()
        got = self._got[branch]
        if got is None or not _same_state(rng.get_state(legacy=True), self.state):
            return None
        rng.set_state(got[1])
        return got[0]


_jobs: queue.SimpleQueue[Callable[[], None]] | None = None
_started = threading.Lock()


def _worker() -> queue.SimpleQueue[Callable[[], None]]:
    """The queue of the process's one thread that computes proposals ahead (started on first
    use; a daemon: it holds no state a search needs at exit). A thread started per trial
    would cost the trial its start-up hand-off."""
    global _jobs
    with _started:
        if _jobs is None:
            jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(jobs,), name="tpe-ahead", daemon=True).start()
            _jobs = jobs
        return _jobs


def _serve(jobs: queue.SimpleQueue[Callable[[], None]]) -> None:
    while True:
        jobs.get()()


def _same_state(a: Any, b: Any) -> bool:
    """Two legacy ``RandomState.get_state()`` tuples are equal."""
    return bool(a[0] == b[0] and np.array_equal(a[1], b[1]) and tuple(a[2:]) == tuple(b[2:]))
