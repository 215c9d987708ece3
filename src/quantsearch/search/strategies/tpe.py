"""Optuna's TPE, proposal for proposal, without re-reading every finished trial each time.

``optuna.samplers.TPESampler`` (single objective, default options) re-reads every trial on
every proposal, re-encodes each trial's parameters one call at a time, computes each trial's
constraint score and sorts them all in Python before it builds its two Parzen estimators: at
1,000 trials of an 8-knob space that is most of its ~11 ms (BENCHMARKS.md, issue 15).
A finished trial never changes, so :class:`IncrementalTPESampler` encodes each once, into
numpy arrays, and keeps the orders Optuna's split sorts them in as they come
(:mod:`~quantsearch.search.strategies.tpe_history`). The Parzen estimators of
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
of Optuna's ask, suggestions and tell: about a millisecond of bookkeeping a trial. Past
:data:`~quantsearch.search.strategies.tpe_ahead.START_AT` finished trials (categorical
parameters, Linux), the next trial's proposal is computed while the trial before it runs, in a
helper process (:mod:`~quantsearch.search.strategies.tpe_ahead`), for both ways that trial can
end; the sampler takes the one that is its own proposal, or computes it itself.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from quantsearch.search import optuna_compat, optuna_compat_tpe
from quantsearch.search.strategies import tpe_ahead
from quantsearch.search.strategies.base import Encoding, Space
from quantsearch.search.strategies.random_batch import one_hot_picks
from quantsearch.search.strategies.tpe_choice import clear_choice
from quantsearch.search.strategies.tpe_history import History
from quantsearch.search.strategies.tpe_parzen import Weights, categorical_mixture

__all__ = ["IncrementalTPESampler", "categorical_point", "tpe_sampler"]


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
        self._history: History | None = None
        self._past_startup = False
        self._lock = threading.Lock()
        self._space = space  # what propose_batch proposes over (None: only Optuna's ask)
        self._encoding = encoding
        self._distributions: dict[str, BaseDistribution] | None = None  # the space's, once
        self._read_now = False  # in propose_batch, after its read of the trials
        self._categorical = False  # the last proposal was over categorical parameters only
        self._ahead: tpe_ahead.Ahead | None = None  # the next proposal computed ahead
        self._chosen: tuple[int, list[float]] | None = None  # trial number, its point's row

    def __getstate__(self) -> dict[str, Any]:
        # A lock does not pickle (a study pickled to save it, a deep copy); the history is read
        # again from the study it samples for, so it is not carried either (nor its helper).
        state = self.__dict__.copy()
        del state["_lock"]
        state["_history"] = state["_ahead"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("_read_now", False)  # a sampler pickled before it had this attribute
        state.setdefault("_categorical", False)
        state.setdefault("_ahead", None)
        state.setdefault("_chosen", None)
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
        if relative:
            self._look_ahead(number, params)
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
        parzen = optuna_compat_tpe.tpe_parzen_defaults(self)
        categorical = parzen is not None and all(
            isinstance(d, CategoricalDistribution) for d in search_space.values()
        )
        rng, n_candidates = optuna_compat_tpe.tpe_rng_and_candidates(self)
        with self._lock:  # the threads of one study (search.n_jobs) share its sampler
            split = self._split(study, trial, search_space)
            if split is None:
                return optuna_compat_tpe.tpe_sample_as_optuna(self, study, trial, search_space)
            history, below, extra = split
            self._categorical = categorical
            ahead = self._ahead if categorical and not extra else None
            chosen = ahead.take(trial.number, below, rng) if ahead is not None else None
            if chosen is None:
                x_below, x_above = self._observed(history, below, extra)
        if chosen is None and not categorical:
            names = list(search_space)
            return optuna_compat_tpe.tpe_sample(
                self,
                search_space,
                {k: x_below[:, j] for j, k in enumerate(names)},
                {k: x_above[:, j] for j, k in enumerate(names)},
            )
        if chosen is None:
            assert parzen is not None
            choices = [len(d.choices) for d in search_space.values()]  # type: ignore[attr-defined]
            chosen = categorical_point(x_below, x_above, choices, parzen, rng, n_candidates)
        self._chosen = (trial.number, chosen)  # the point's row, for the helper (_look_ahead)
        # as TPESampler._sample gives it: a float to each external representation
        values = zip(search_space.items(), chosen, strict=True)
        return {name: d.to_external_repr(v) for (name, d), v in values}

    def _split(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> tuple[History, np.ndarray, list[tuple[int, list[float]]]] | None:
        """The history, its rows below by trial number (as ``TPESampler._sample`` splits the
        trials) and the running trials of other workers (the constant liar's: above), each
        number and encoded parameters; ``None``: a case left to Optuna."""
        history = self._history_for(study, search_space)
        # the constant liar reads the trials from the storage now (other workers' running
        # ones must be current); propose_batch has just done so, in a study of one process
        trials = optuna_compat.study_trials(study) if self._read_now else None
        trials = optuna_compat.fresh_trials(study) if trials is None else trials
        running = history.update(trials, trial.number, study)
        below = history.below(optuna_compat_tpe.tpe_gamma(self, history.n))
        if below is None:
            return None
        if history.missing:  # Optuna leaves out a trial without every parameter
            below = below[history.has_all[below]]
        extra = [(t.number, self._running_row(t, study, history)) for t in running]
        return history, below, [(n, x) for n, x in extra if x is not None]

    @staticmethod
    def _observed(
        history: History, below: np.ndarray, extra: list[tuple[int, list[float]]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """The encoded parameters of the trials below and above, each by trial number."""
        above = history.above(below)
        x_above = history.x[above]
        if extra:  # running trials are above, at their place by number
            x_above = np.concatenate([x_above, np.array([x for _, x in extra])])
            numbers = np.concatenate([history.number[above], [n for n, _ in extra]])
            x_above = x_above[np.argsort(numbers, kind="stable")]
        return history.x[below], x_above

    def _look_ahead(self, number: int, params: dict[str, Any]) -> None:
        """Trial ``number`` got ``params``: have trial ``number + 1``'s proposal computed
        while it runs (:mod:`~quantsearch.search.strategies.tpe_ahead`), once the history is
        long enough for that to pay, over a space of categorical parameters."""
        h = self._history
        if h is None or not self._categorical or h.n < tpe_ahead.START_AT:
            return
        if not (tpe_ahead.available() and h.space.keys() <= params.keys()):
            return
        if self._ahead is None or not self._ahead.alive or self._ahead.history is not h:
            if self._ahead is not None:
                if self._ahead.gave_up:  # it did not keep up: no CPU to spare here
                    return
                self._ahead.close()
            self._ahead = tpe_ahead.Ahead(
                h, lambda n: optuna_compat_tpe.tpe_gamma(self, n), self._point
            )
        got = self._chosen
        row = (
            tuple(got[1])
            if got is not None and got[0] == number
            else tuple(float(d.to_internal_repr(params[k])) for k, d in h.space.items())
        )
        self._ahead.ask(number, row, optuna_compat_tpe.tpe_rng_and_candidates(self)[0])

    def _point(self, x_below: np.ndarray, x_above: np.ndarray, rng: Any) -> list[float]:
        """:func:`categorical_point` with this sampler's space and parameters."""
        assert self._history is not None
        choices = [len(d.choices) for d in self._history.space.values()]  # type: ignore[attr-defined]
        parzen = optuna_compat_tpe.tpe_parzen_defaults(self)
        assert parzen is not None
        n_candidates = optuna_compat_tpe.tpe_rng_and_candidates(self)[1]
        return categorical_point(x_below, x_above, choices, parzen, rng, n_candidates)

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

    def _history_for(self, study: Study, space: dict[str, BaseDistribution]) -> History:
        h = self._history
        if h is None or not _same_space(h.space, space):
            # A new search space (Optuna's intersection shrank): encode the trials again.
            h = self._history = History(space, study.direction == StudyDirection.MAXIMIZE)
            if self._ahead is not None:  # its copy is of the old history
                self._ahead.close()
                self._ahead = None
        return h

    def _running_row(self, trial: FrozenTrial, study: Study, h: History) -> list[float] | None:
        params = optuna_compat_tpe.tpe_trial_params(self, trial, study)
        if not h.space.keys() <= params.keys():
            return None
        return [d.to_internal_repr(params[k]) for k, d in h.space.items()]


def categorical_point(
    x_below: np.ndarray,
    x_above: np.ndarray,
    choices: list[int],
    parzen: tuple[float, Weights],
    rng: np.random.RandomState,
    n_candidates: int,
) -> list[float]:
    """``TPESampler._sample``'s proposal over categorical parameters (their ``choices``)
    from the observations below and above: Optuna's Parzen estimators by their distinct rows,
    its candidates drawn from the one below with ``rng``, and the best of them, by the
    closed form where its choice is clear (tpe_choice), else by Optuna's log-densities.
    Returns the parameters' internal representations (floats), in order."""
    below = categorical_mixture(x_below, choices, *parzen)
    samples = below.sample(rng, n_candidates)
    chosen = clear_choice(samples, choices, x_below, x_above, *parzen)
    if chosen is not None:
        return chosen
    above = categorical_mixture(x_above, choices, *parzen)
    acquisition = below.log_pdf(samples) - above.log_pdf(samples)
    names = [str(i) for i in range(len(choices))]
    return optuna_compat_tpe.tpe_best(names, samples, acquisition)


def tpe_sampler(
    seed: int, options: dict[str, Any], n_objectives: int, space: Space | None = None
) -> BaseSampler | None:
    """:class:`IncrementalTPESampler` over ``space`` where it gives Optuna's proposals (no
    options, one objective); ``None``: build Optuna's ``TPESampler`` with the options."""
    if options or n_objectives != 1:
        return None
    return IncrementalTPESampler(seed=seed, space=space)
