"""The batched trial path: for a strategy that knows its next points in advance (brute force,
random search, TPE's random start-up), K trials at a time, the new configs among them evaluated
together, each trial stored whole; for TPE after its start-up, whose next point depends on every
result before it, one at a time.

The one-at-a-time path asks Optuna for a trial, suggests each knob, records its attributes and
tells it, about a millisecond of bookkeeping a trial. Here the sampler proposes K points at once
(``propose_batch``: brute force's next unvisited points; random search's draws, those Optuna's
``RandomSampler`` makes for the same trials, :mod:`~quantsearch.search.strategies.random_batch`;
TPE's next point, Optuna's ``TPESampler``'s, :mod:`~quantsearch.search.strategies.tpe`),
:meth:`~quantsearch.search.trial_objective.TrialObjective.run_many`
resolves and pre-checks them, answers repeats from the cache and evaluates the rest in one
:meth:`~quantsearch.search.evaluate.Evaluator.evaluate_many` call, and each trial is stored as
one finished trial (:func:`~quantsearch.search.optuna_compat.add_trials`: what
``Study.add_trial`` writes, one journal record a trial, the batch's records appended and
replayed at once) with the same parameters, distributions,
values, constraints and user attributes the one-at-a-time path stores, and both timestamps:
its start is the batch's. The budget's tickets, the cache, pre-checks, failed configs,
``n_evaluations``, exhaustion and the callbacks work as on the other path
(``tests/search/test_batch.py`` and ``test_random_batch.py`` compare the two trial by trial).

Used only where that is exact: one process on the study (no claims: a point is claimed with a
trial number, which a batch's trials do not have before they are stored), one thread
(``n_jobs = 1``), full fidelity (the pruner reports per trial), and no WAITING trial (a dead
worker's retry, which Optuna's ``ask`` runs first). Anything else runs one at a time.

K adapts so that a batch takes about :data:`TARGET_S`, up to :data:`MAX_K` (or the sampler's
``batch_limit(study)``: for TPE, the random start-up's trials still to come, then 1): the first
K from the time the float baseline took in this process (a lower bound of a trial's
evaluation; 1 when it was not measured here, as on resume), every next one at the last batch's
time per new evaluation (hits and pre-checked trials cost microseconds and do not grow it):
a ``kill -9`` then loses at most the batch in flight, about as long as group commit's interval,
and ``timeout`` and Ctrl-C are answered within a batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Protocol, runtime_checkable

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from quantsearch.search import optuna_compat
from quantsearch.search.parallel import Coordinator
from quantsearch.search.parallel.liveness import WORKER_ATTR, worker_id
from quantsearch.search.strategies.base import Encoding
from quantsearch.search.trial_objective import Outcome, TrialObjective

__all__ = ["MAX_K", "TARGET_S", "BatchProposer", "Batches", "first_k"]

TARGET_S = 0.05  # seconds a batch aims to take
MAX_K = 256  # trials in one batch at most


@runtime_checkable
class BatchProposer(Protocol):
    """A sampler that proposes the points of its next ``k`` trials at once; one whose proposals
    depend on the trials before them caps ``k`` with a method ``batch_limit(study) -> int``."""

    def propose_batch(self, study: optuna.Study, k: int) -> list[dict[str, int]]: ...


class Batches:
    """Runs a study's trials K at a time (see the module doc).

    Args:
        objective: the study's one-trial objective (its cache, pre-check, evaluator, config).
        sampler: the study's sampler; it proposes the points.
        coord: the study's coordinator (its budget's tickets).
    """

    def __init__(self, objective: TrialObjective, sampler: BaseSampler, coord: Coordinator):
        assert isinstance(sampler, BatchProposer)
        self.objective, self.sampler, self.budget = objective, sampler, coord.budget
        self.k = first_k(objective.evaluator.baseline_seconds)
        self._limit: Callable[[optuna.Study], int] | None = getattr(sampler, "batch_limit", None)
        self._finished = 0  # leading trials seen finished (ready)
        self._worker = worker_id()
        self._encoding: Encoding = "categorical" if objective.categorical else "ordinal"
        self._distributions = objective.space.distributions(self._encoding)

    @staticmethod
    def usable(objective: TrialObjective, sampler: BaseSampler, coord: Coordinator) -> bool:
        """Whether this study's trials may run in batches (see the module doc)."""
        cfg = objective.cfg
        return (
            isinstance(sampler, BatchProposer)
            and coord.claims is None
            and cfg.n_jobs == 1
            and cfg.fidelity.method == "full"
        )

    def ready(self, study: optuna.Study) -> bool:
        """No WAITING trial (a retry, which the one-at-a-time path runs first).

        Asked before every batch: the trials before the first unfinished one (listed by number,
        new ones last) stay finished, so they are counted once and not looked at again.
        """
        trials = optuna_compat.study_trials(study)
        i = self._finished
        while i < len(trials) and trials[i].state.is_finished():
            i += 1
        self._finished = i
        return not any(t.state == TrialState.WAITING for t in trials[i:])

    def run(self, study: optuna.Study, after: Callable[[optuna.Study, FrozenTrial], None]) -> None:
        """One batch: the ticket just taken and up to ``k - 1`` more; ``after`` per stored trial,
        once the batch is stored (in one write, or also before a failed config, whose values
        depend on the trials before it).

        A batch interrupted before its trials are stored (Ctrl-C during the evaluation) stores
        none of them and gives every ticket back.
        """
        cfg = self.objective.cfg
        k, cap = 1, min(self.k, MAX_K if self._limit is None else self._limit(study))
        if cfg.n_evaluations is not None:  # a trial charges at most one evaluation
            spent = self.objective.evaluations_spent(study)
            cap = min(cap, max(1, cfg.n_evaluations - spent))
        left = self.objective.left_to_exhaust()
        if left is not None:  # a new point is one more config evaluated or pre-checked
            cap = min(cap, max(1, left))
        while k < cap and self.budget.take(cfg.n_trials) is not None:
            k += 1
        new = 0
        trials: list[FrozenTrial] = []
        pending: list[tuple[FrozenTrial, int]] = []  # outcomes not stored yet, their numbers

        def store() -> None:
            """Store the pending trials in one write (the journal: one append, one replay)."""
            done = optuna_compat.add_trials(study, [t for t, _ in pending])
            for trial, (_, number) in zip(done, pending, strict=True):
                assert trial.number == number, "batch: a trial number was taken"
            trials.extend(done)
            pending.clear()

        t0 = time.perf_counter()
        try:
            choices = self.sampler.propose_batch(study, k)
            # one process: ready() has just read the trials, and nothing was stored since
            first = len(optuna_compat.study_trials(study))
            start = datetime.now()
            outcomes = self.objective.run_many(study, choices, first, store)
            for choice, out in zip(choices, outcomes, strict=True):
                pending.append((self._frozen(choice, out, start), out.info.number))
                new += out.info.evaluated
            store()
            for trial in trials:
                after(study, trial)
        finally:
            for _ in range(k - len(trials)):
                self.budget.give_back()
        self._adapt(time.perf_counter() - t0, new)

    def _frozen(self, choice: Mapping[str, int], out: Outcome, start: datetime) -> FrozenTrial:
        """The finished trial, as the one-at-a-time path leaves it in the storage."""
        number = out.info.number
        return FrozenTrial(
            number=number,
            state=TrialState.COMPLETE,
            value=None,
            values=list(out.values),
            datetime_start=start,
            datetime_complete=datetime.now(),
            params=self.objective.space.encode(choice, self._encoding),
            distributions=self._distributions,
            user_attrs={WORKER_ATTR: f"{number}@{self._worker}", **out.info.to_user_attrs()},
            system_attrs=optuna_compat.constraints_attrs(out.constraints),
            intermediate_values={},
            trial_id=0,  # the storage numbers it
        )

    def _adapt(self, seconds: float, new: int) -> None:
        """The next K: as many trials as fit in :data:`TARGET_S` if every one of them were a
        new evaluation at this batch's pace per new evaluation (the whole batch's time over its
        ``new`` evaluations: an upper bound of one). Cache hits and pre-checked trials cost
        microseconds; counted as trials they would grow K until a batch of new configs ran
        far past the target (and a ``kill -9`` lost all of it). No new evaluation: K stays."""
        if new:
            self.k = first_k(seconds / new)


def first_k(seconds_a_trial: float | None) -> int:
    """As many trials as fit in :data:`TARGET_S` at ``seconds_a_trial`` (1 when unknown).

    Example:
        >>> first_k(None), first_k(0.001), first_k(0.2), first_k(1e-6)
        (1, 50, 1, 256)
    """
    if seconds_a_trial is None:
        return 1
    return max(1, min(MAX_K, int(TARGET_S / max(seconds_a_trial, 1e-9))))
