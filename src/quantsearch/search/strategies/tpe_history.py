"""The finished trials TPE's proposal reads, one row each, kept as they come.

``TPESampler._sample`` reads every trial of the study on every proposal, encodes each trial's
parameters one call at a time and sorts the trials into below (good) and above. A finished
trial never changes: :class:`History` encodes each once, into numpy arrays, and keeps the
orders Optuna's split sorts them in as they come (bisected by key and trial number, which
orders ties as Python's ``sorted`` does). Used by
:class:`~quantsearch.search.strategies.tpe.IncrementalTPESampler`; the lockstep tests of
``tests/search/strategies/test_tpe.py`` compare its proposals with Optuna's.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from quantsearch.search import optuna_compat_tpe

__all__ = ["Entry", "History"]

# What History.add learnt of a trial: (number, its parameters' internal representations in the
# space's order or None without every one, the sorted list it joins, its key there)
Entry = tuple[int, tuple[float, ...] | None, str, Any]


class History:
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
        self.log: list[Entry] | None = None  # the entries added, when kept (tpe_ahead)

    def add(self, trial: FrozenTrial, study: Study) -> Entry:
        """Add a finished trial; return its :data:`Entry`, which :meth:`insert` adds to a
        copy of this history (a process computing proposals ahead) as this call did."""
        params = trial.params  # TPESampler reads a finished trial's own params
        row = None
        if self.space.keys() <= params.keys():
            row = tuple(d.to_internal_repr(params[k]) for k, d in self.space.items())
        infeasible, pruned_key = optuna_compat_tpe.tpe_trial_scores(trial, study)
        key: Any = None  # in no sorted list
        if infeasible > 0:
            kind, key = "infeasible", infeasible
        elif trial.state == TrialState.COMPLETE:
            value = trial.value
            assert value is not None
            kind = "nan" if math.isnan(value) else "complete"
            key = -value if self.maximize else value
        else:
            kind = "pruned" if trial.state == TrialState.PRUNED else "none"
            key = pruned_key
        entry = (trial.number, row, kind, key)
        self.insert(entry)
        if self.log is not None:
            self.log.append(entry)
        return entry

    def insert(self, entry: Entry) -> None:
        """Add the trial :meth:`add` described by ``entry``."""
        if self.n == len(self.number):
            for name in ("x", "number", "has_all"):
                old = getattr(self, name)
                new = np.empty((2 * len(old), *old.shape[1:]), dtype=old.dtype)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        i, (number, row, kind, key) = self.n, entry
        self.has_all[i] = row is not None
        if row is not None:
            self.x[i] = row
        else:
            self.missing += 1
        if kind == "nan":
            self.nan = True
        elif kind in ("infeasible", "complete", "pruned"):
            bisect.insort(getattr(self, kind), (key, number, i))
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

    def above(self, below: np.ndarray) -> np.ndarray:
        """The rows ``_split_trials`` puts above, by trial number: those not ``below`` (from
        :meth:`below`) with every parameter (Optuna leaves out a trial without one)."""
        keep = self.has_all[: self.n].copy() if self.missing else np.ones(self.n, dtype=bool)
        keep[below] = False
        if self.in_order:  # rows are by trial number
            return np.flatnonzero(keep)
        rows = self.rows()
        out: np.ndarray = rows[keep[rows]]
        return out

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
