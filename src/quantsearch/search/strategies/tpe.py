"""Optuna's TPE, proposal for proposal, without re-reading every finished trial each time.

``optuna.samplers.TPESampler`` (single objective, default options) re-reads every trial on
every proposal, re-encodes each trial's parameters one call at a time, computes each trial's
constraint score and sorts them all in Python before it builds its two Parzen estimators: at
1,000 trials of an 8-knob space that is most of its ~11 ms (BENCHMARKS.md, issue 15).
A finished trial never changes, so :class:`IncrementalTPESampler` encodes each once, into
numpy arrays, and keeps the orders Optuna's split sorts them in as they come (bisected by key
and trial number, which orders ties as Python's ``sorted`` does). The Parzen estimators of
categorical parameters are built by :mod:`~quantsearch.search.strategies.tpe_parzen` (Optuna's
operations on each parameter's few distinct kernel rows), others by Optuna's own code
(``optuna_compat_tpe.tpe_sample``); either way they get the same observations in the same
order, draw from the same random state and choose the best candidate as Optuna does, so the
proposals are Optuna's, for the same seed and history, draw for draw
(``tests/search/strategies/test_tpe.py`` runs both side by side). For categorical parameters
the best candidate is found by the closed form of the two mixtures
(:mod:`~quantsearch.search.strategies.tpe_choice`) where it leads by a clear margin, else by
Optuna's own log-densities.

What it covers is what it is built for: a single-objective study, categorical and integer
parameters, TPESampler's default options (only ``seed``); constraints, pruned trials and the
running trials of other workers (the constant liar) are handled as Optuna handles them.
Anything else is Optuna's own ``TPESampler._sample``, unchanged: :func:`tpe_sampler` builds
Optuna's sampler when options are given or the study has several objectives, and a proposal
over another kind of distribution, a dynamic search space or a NaN objective value is made
by the parent class.

Given the space, the sampler also proposes the next trial's point without a trial to ask for
(:meth:`IncrementalTPESampler.propose_batch`, one trial at a time: a proposal reads the results
of every trial before it), so that a study of one process runs TPE through the batched trial
path (:mod:`quantsearch.search.batch`), each trial stored whole in one journal append, instead
of Optuna's ask, suggestions and tell: about a millisecond of bookkeeping a trial.
"""

from __future__ import annotations

import bisect
import math
import threading
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from quantsearch.search import optuna_compat, optuna_compat_tpe
from quantsearch.search.strategies.base import Encoding, Space
from quantsearch.search.strategies.random_batch import one_hot_picks
from quantsearch.search.strategies.tpe_choice import clear_choice
from quantsearch.search.strategies.tpe_parzen import categorical_mixture

__all__ = ["IncrementalTPESampler", "tpe_sampler"]


class _History:
    """The finished trials of one study over one search space, one row each, in the order
    they were first seen, and the orders ``_split_trials`` sorts them in, kept as they come.

    ``TPESampler`` sorts the feasible complete trials by value, the feasible pruned ones by
    their pruned-trial score and the infeasible ones by their constraints' violation, each
    list in trial order (Python's ``sorted`` is stable), and takes the first of each in turn.
    A finished trial never changes, so each goes into its sorted list once, by ``(key,
    number)`` (the same order: ties by trial number); a proposal takes the first few.
    """

    def __init__(self, space: dict[str, BaseDistribution], maximize: bool) -> None:
        self.space, self.names = space, list(space)
        self.maximize = maximize
        self.seen: set[int] = set()
        self.n = 0
        cap = 64
        self.x = np.empty((cap, len(space)))  # internal representations
        self.number = np.empty(cap, dtype=np.int64)
        self.has_all = np.empty(cap, dtype=bool)  # has every parameter of the space
        self.missing = 0  # rows without every parameter
        # (key, trial number, row), each sorted: COMPLETE by value (negated when maximising),
        # PRUNED by Optuna's pruned-trial score, infeasible by the sum of violated constraints
        self.complete: list[tuple[float, int, int]] = []
        self.pruned: list[tuple[tuple[float, float], int, int]] = []
        self.infeasible: list[tuple[float, int, int]] = []
        self.nan = False  # a feasible complete trial's value is NaN (sorted differently)
        self.order: np.ndarray | None = None  # rows by trial number, once out of order
        self.in_order = True  # rows were seen by increasing trial number: rows are that order
        self.scanned = 0  # the trials numbered below it are finished (or failed) and seen
        self.last = -1  # the largest trial number seen

    def add(self, trial: FrozenTrial, study: Study) -> None:
        if self.n == len(self.number):
            for name in ("x", "number", "has_all"):
                old = getattr(self, name)
                new = np.empty((2 * len(old), *old.shape[1:]), dtype=old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        i, number = self.n, trial.number
        params = trial.params  # TPESampler reads a finished trial's own params
        self.has_all[i] = self.space.keys() <= params.keys()
        if self.has_all[i]:
            self.x[i] = [d.to_internal_repr(params[k]) for k, d in self.space.items()]
        else:
            self.missing += 1
        infeasible, pruned_key = optuna_compat_tpe.tpe_trial_scores(trial, study)
        if infeasible > 0:
            bisect.insort(self.infeasible, (infeasible, number, i))
        elif trial.state == TrialState.COMPLETE:
            value = trial.value
            assert value is not None
            if math.isnan(value):
                self.nan = True
            else:
                bisect.insort(self.complete, (-value if self.maximize else value, number, i))
        elif trial.state == TrialState.PRUNED:
            bisect.insort(self.pruned, (pruned_key, number, i))
        if number < self.last:
            self.in_order = False  # seen out of number order (another worker's trial)
        self.order = None
        self.last = max(self.last, number)
        self.number[i] = number
        self.seen.add(number)
        self.n += 1

    def update(self, trials: list[FrozenTrial], current: int, study: Study) -> list[FrozenTrial]:
        """Add the finished trials not seen yet; return the running ones but ``current``, the
        trials Optuna's constant liar counts (above). ``trials`` are all the study's trials,
        where the trial numbered ``i`` is ``trials[i]``: the ones before the first still
        running or waiting are final and seen, so they are not looked at again."""
        start = self.scanned
        if start > len(trials) or (start and trials[start - 1].number != start - 1):
            start = 0  # not listed by number (never seen with Optuna's storages): look at all
        running: list[FrozenTrial] = []
        first_open: int | None = None
        for i in range(start, len(trials)):
            t = trials[i]
            state = t.state
            if state == TrialState.RUNNING or state == TrialState.WAITING:
                first_open = i if first_open is None else first_open
                if state == TrialState.RUNNING and t.number != current:
                    running.append(t)
            elif state != TrialState.FAIL and t.number not in self.seen:
                self.add(t, study)
        self.scanned = first_open if first_open is not None else len(trials)
        return running

    def rows(self) -> np.ndarray:
        """The rows by trial number."""
        if self.in_order:
            return np.arange(self.n)
        if self.order is None:
            self.order = np.argsort(self.number[: self.n], kind="stable")
        return self.order

    def below(self, n_below: int) -> np.ndarray | None:
        """The rows ``_split_trials`` puts below (good), by trial number; ``None`` when a
        complete trial's value is NaN (Python's sort and numpy's disagree on it)."""
        if self.nan:
            return None
        chosen = self.complete[:n_below]
        for more in (self.pruned, self.infeasible):
            if len(chosen) < n_below and more:
                chosen = chosen + more[: n_below - len(chosen)]  # type: ignore[operator]
        return np.array([row for _, _, row in sorted(chosen, key=lambda c: c[1])], dtype=int)


def _one_value(d: BaseDistribution) -> Any:
    """The value ``Trial._suggest`` gives a distribution of one choice, drawing nothing."""
    assert isinstance(d, (CategoricalDistribution, IntDistribution))
    return d.choices[0] if isinstance(d, CategoricalDistribution) else d.low


def _same_space(a: dict[str, BaseDistribution], b: dict[str, BaseDistribution]) -> bool:
    """``list(a.items()) == list(b.items())`` without comparing categorical choices one call
    each (``CategoricalDistribution.__eq__``; a NaN choice makes them differ here: the history
    is then encoded again, which is slower, not wrong)."""
    return list(a) == list(b) and all(
        type(d) is type(b[k]) and d.__dict__ == b[k].__dict__ for k, d in a.items()
    )


class IncrementalTPESampler(TPESampler):
    """``TPESampler(seed=seed)`` whose proposals read each finished trial once.

    Every method but ``_sample`` (the proposal from the trials so far), ``_sample_relative``
    (which calls it once the study has its start-up trials) and
    ``infer_relative_search_space`` (the same space, not deep-copied) is Optuna's; those give
    the same parameters for the same seed and history as Optuna's, or are Optuna's own where
    this class does not cover the case (see the module's docstring).

    Example:
        >>> import optuna
        >>> optuna.logging.set_verbosity(optuna.logging.WARNING)
        >>> study = optuna.create_study(sampler=IncrementalTPESampler(seed=0))
        >>> study.optimize(lambda t: t.suggest_int("x", 0, 7) ** 2, n_trials=15)
        >>> len(study.trials)
        15
    """

    def __init__(
        self,
        seed: int | None = None,
        space: Space | None = None,
        encoding: Encoding = "categorical",
    ) -> None:
        super().__init__(seed=seed)
        self._history: _History | None = None
        self._past_startup = False
        self._lock = threading.Lock()
        self._space = space  # what propose_batch proposes over (None: only Optuna's ask)
        self._encoding = encoding
        self._distributions: dict[str, BaseDistribution] | None = None  # the space's, once
        self._read_now = False  # in propose_batch, after its read of the trials

    def __getstate__(self) -> dict[str, Any]:
        # A lock does not pickle (a study pickled to save it, a deep copy); the history is read
        # again from the study it samples for, so it is not carried either.
        state = self.__dict__.copy()
        del state["_lock"]
        state["_history"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_read_now", False)  # a sampler pickled before it had this attribute
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def batch_limit(self, study: Study) -> int:
        """How many trials :meth:`propose_batch` may propose at once: during the random start-up,
        the start-up trials still to come (however each ends, a failed one not counting, every
        one of them is a start-up trial: its points are random draws that read no result);
        after it, 1 (a proposal reads the result of every trial before it)."""
        if self._past_startup or self._space is None:
            return 1
        optuna_compat.sync_trials(study)  # count what is stored now
        finished = optuna_compat.study_trials(study, (TrialState.COMPLETE, TrialState.PRUNED))
        return max(1, optuna_compat_tpe.tpe_n_startup(self) - len(finished))

    def propose_batch(self, study: Study, k: int) -> list[dict[str, int]]:
        """The points (knob -> choice index) of the study's next ``k`` trials (at most
        :meth:`batch_limit`: 1 after the random start-up), as Optuna's ``ask`` and each
        trial's suggestions of the space's knobs in order draw them, for a study of this process alone with no waiting trial (the
        batched trial path's conditions; it stores the trial finished, as the next one).

        In ``ask`` the new trial is already stored, RUNNING, with no parameter; the sampler
        reads it only to leave it out (the constant liar lies about the *other* running trials;
        the intersection search space and the start-up count read finished trials), so a
        trial of the next number, running, with nothing yet, stands in for it. Then the same
        calls in the same order: ``before_trial``, the relative search space, the relative
        sample, and ``sample_independent`` for each knob of several choices it left out (all
        of them during the random start-up); a knob of one choice draws nothing
        (``Trial._suggest``). Not written: the constant liar's ``tpe:relative_params`` system
        attributes, which tell other workers what a running trial will suggest; this trial is
        never seen running. ``tests/search/strategies/test_tpe_batch.py`` checks the points
        against Optuna's ``TPESampler`` in lockstep, and whole searches.
        """
        if self._space is None or not 1 <= k <= self.batch_limit(study):
            raise ValueError(
                f"propose_batch: one trial at a time after the start-up, over a given space (k={k})"
            )
        optuna_compat.sync_trials(study)  # as ask: read what is stored now
        number = len(optuna_compat.study_trials(study))
        if self._distributions is None:
            self._distributions = self._space.distributions(self._encoding)
        if k > 1:
            return self._startup_points(study, number, k)
        trial = optuna_compat.new_running_trial(number, -1)  # id -1: stored once finished
        self.before_trial(study, trial)
        relative_space = self.infer_relative_search_space(study, trial)
        self._read_now = True  # the trials were just read: no second read for the liar
        try:
            relative = self._sample_relative(study, trial, relative_space)
        finally:
            self._read_now = False
        params: dict[str, Any] = {}
        for name, d in self._distributions.items():
            if d.single():
                params[name] = _one_value(d)
            elif name in relative and name in relative_space:
                params[name] = relative[name]
            else:
                params[name] = self.sample_independent(study, trial, name, d)
        return [self._space.decode(params)]

    def _startup_points(self, study: Study, number: int, k: int) -> list[dict[str, int]]:
        """The random start-up's next ``k`` points: what each trial's ``sample_independent``
        calls draw from Optuna's ``RandomSampler`` (the relative sample is empty before the
        start-up's end and draws nothing), trial after trial, knob after knob. Categorical
        knobs are drawn in one call (``random_batch.one_hot_picks``), others call by call."""
        assert self._space is not None and self._distributions is not None
        drawing = {n: d for n, d in self._distributions.items() if not d.single()}
        trials = [optuna_compat.new_running_trial(number + i, -1) for i in range(k)]
        for trial in trials:  # RandomSampler's (a no-op), as ask calls it per trial
            self.before_trial(study, trial)
        if all(isinstance(d, CategoricalDistribution) for d in drawing.values()):
            sizes = [len(d.choices) for d in drawing.values()]  # type: ignore[attr-defined]
            rng = optuna_compat.random_state(self._random_sampler)
            drawn = dict(zip(drawing, one_hot_picks(rng, sizes, k), strict=True))
            names = [knob.name for knob in self._space.knobs]  # a single label is index 0
            return [{n: drawn[n][i] if n in drawn else 0 for n in names} for i in range(k)]
        points = []
        for trial in trials:
            params = {
                name: self._random_sampler.sample_independent(study, trial, name, d)
                if name in drawing
                else _one_value(d)
                for name, d in self._distributions.items()
            }
            points.append(self._space.decode(params))
        return points

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        # TPESampler's (multivariate for one objective: the intersection of the finished trials'
        # distributions, one-choice ones left out), without its deep copy each trial
        if len(study.directions) != 1 or not optuna_compat_tpe.tpe_uses_defaults(self):
            return super().infer_relative_search_space(study, trial)
        space = optuna_compat_tpe.tpe_intersection(self, study)
        return {name: d for name, d in space.items() if not d.single()}

    def _sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        # TPESampler's, but once the study has had its n_startup_trials finished trials (they
        # stay finished), they are not counted again from a list of every trial each proposal.
        if not search_space:
            return {}
        if not self._past_startup:
            finished = optuna_compat.study_trials(study, (TrialState.COMPLETE, TrialState.PRUNED))
            if len(finished) < optuna_compat_tpe.tpe_n_startup(self):
                return {}
            self._past_startup = True
        return self._sample(study, trial, search_space)

    def _sample(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not self._covers(study, search_space):
            return optuna_compat_tpe.tpe_sample_as_optuna(self, study, trial, search_space)
        with self._lock:  # the threads of one study (search.n_jobs) share its sampler
            observed = self._observations(study, trial, search_space)
        if observed is None:
            return optuna_compat_tpe.tpe_sample_as_optuna(self, study, trial, search_space)
        x_below, x_above = observed
        parzen = optuna_compat_tpe.tpe_parzen_defaults(self)
        if parzen is None or not all(
            isinstance(d, CategoricalDistribution) for d in search_space.values()
        ):
            names = list(search_space)
            return optuna_compat_tpe.tpe_sample(
                self,
                search_space,
                {k: x_below[:, j] for j, k in enumerate(names)},
                {k: x_above[:, j] for j, k in enumerate(names)},
            )
        # Optuna's Parzen estimators of categorical parameters, by their distinct rows; the
        # one above only where the closed form's choice is not clear (tpe_choice)
        choices = [len(d.choices) for d in search_space.values()]  # type: ignore[attr-defined]
        below = categorical_mixture(x_below, choices, *parzen)
        rng, n_candidates = optuna_compat_tpe.tpe_rng_and_candidates(self)
        samples = below.sample(rng, n_candidates)
        chosen = clear_choice(samples, choices, x_below, x_above, *parzen)
        if chosen is not None:  # as TPESampler._sample gives it: a float to each external
            values = zip(search_space.items(), chosen, strict=True)
            return {name: d.to_external_repr(v) for (name, d), v in values}
        above = categorical_mixture(x_above, choices, *parzen)
        acquisition = below.log_pdf(samples) - above.log_pdf(samples)
        return optuna_compat_tpe.tpe_best(search_space, samples, acquisition)

    def _observations(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The encoded parameters of the trials below and above, each by trial number, as
        ``TPESampler._sample`` splits them; ``None``: a case left to it."""
        history = self._history_for(study, search_space)
        # the constant liar reads the trials from the storage now (other workers' running
        # ones must be current); propose_batch has just done so, in a study of one process
        trials = optuna_compat.study_trials(study) if self._read_now else None
        trials = optuna_compat.fresh_trials(study) if trials is None else trials
        running = history.update(trials, trial.number, study)
        below = history.below(optuna_compat_tpe.tpe_gamma(self, history.n))
        if below is None:
            return None
        keep = np.ones(history.n, dtype=bool)
        keep[below] = False
        if history.missing:  # Optuna leaves out a trial without every parameter
            keep &= history.has_all[: history.n]
            below = below[history.has_all[below]]
        if history.in_order:  # rows are by trial number
            x_above = history.x[: history.n][keep]
            above = None
        else:
            rows = history.rows()
            above = rows[keep[rows]]  # by trial number, as rows are
            x_above = history.x[above]
        extra = [(t.number, self._running_row(t, study, history)) for t in running]
        extra = [(n, x) for n, x in extra if x is not None]
        if extra:  # running trials are above, at their place by number
            n_above = (
                history.number[above] if above is not None else history.number[: history.n][keep]
            )
            x_above = np.concatenate([x_above, np.array([x for _, x in extra])])
            n_above = np.concatenate([n_above, np.array([n for n, _ in extra])])
            x_above = x_above[np.argsort(n_above, kind="stable")]
        return history.x[below], x_above

    def _covers(self, study: Study, search_space: dict[str, BaseDistribution]) -> bool:
        return (
            len(study.directions) == 1
            and len(search_space) > 0
            and all(
                isinstance(d, (CategoricalDistribution, IntDistribution))
                for d in search_space.values()
            )
            and optuna_compat_tpe.tpe_uses_defaults(self)
        )

    def _history_for(self, study: Study, space: dict[str, BaseDistribution]) -> _History:
        h = self._history
        if h is None or not _same_space(h.space, space):
            # A new search space (Optuna's intersection shrank): encode the trials again.
            h = self._history = _History(space, study.direction == StudyDirection.MAXIMIZE)
        return h

    def _running_row(self, trial: FrozenTrial, study: Study, h: _History) -> list[float] | None:
        params = optuna_compat_tpe.tpe_trial_params(self, trial, study)
        if not h.space.keys() <= params.keys():
            return None
        return [d.to_internal_repr(params[k]) for k, d in h.space.items()]


def tpe_sampler(
    seed: int, options: dict[str, Any], n_objectives: int, space: Space | None = None
) -> BaseSampler | None:
    """:class:`IncrementalTPESampler` over ``space`` where it gives Optuna's proposals (no
    options, one objective); ``None``: build Optuna's ``TPESampler`` with the options."""
    if options or n_objectives != 1:
        return None
    return IncrementalTPESampler(seed=seed, space=space)
