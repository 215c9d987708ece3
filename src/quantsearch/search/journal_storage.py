"""The study storage on the journal file: Optuna's ``JournalStorage``, a short trial written as
one record.

Optuna writes a trial as a run of journal records: its creation, each parameter, each user and
system attribute, its end (ten or more for a quantsearch trial, each replayed into memory at
once). With one writer (the run directory's lock) and group commit on, :class:`Journal` keeps
the trial it is running in memory instead (*pending*) and, when it finishes, writes the whole
finished trial as the single ``CREATE_TRIAL`` record that Optuna's own
``Study.add_trial`` writes (state, values, parameters, distributions, attributes and both
timestamps in one line). The file stays Optuna's format: optuna-dashboard, ``optuna.load_study``
and a resumed search read it unchanged. Every read (samplers, the study loop) sees the pending
trial as RUNNING, as before.

What a ``kill -9`` loses is what group commit already allows: the trials in flight and those
finished within the last ``group_commit_s``. A trial still running after ``group_commit_s`` is
written as it stands (a RUNNING ``CREATE_TRIAL`` record) and goes on record by record, so a
long trial shows in the file as RUNNING and a killed one is found, failed and retried on resume
as it always was (``search/parallel/liveness.py``).

At most one trial is pending: a second one started while it runs (``n_jobs`` threads) writes
the first as it stands, because the journal numbers trials in the order their creations are
written, and the pending trial's number was fixed when it started.
Precedent: Optuna's own ``_CachedStorage`` (before 3.0) held a running trial's updates in memory
and wrote them when the trial finished.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Container, Sequence
from datetime import datetime
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    check_distribution_compatibility,
)
from optuna.storages import JournalStorage
from optuna.trial import FrozenTrial, TrialState

from quantsearch.search import optuna_compat
from quantsearch.search.journal import JournalBackend
from quantsearch.search.journal_replay import apply_checked
from quantsearch.search.journal_results import check_against_results

__all__ = ["Journal"]

_WATCH_POLL_S = 0.5  # the watcher's longest sleep between two looks at the pending trial
_WATCH_IDLE_S = 5.0  # it ends after this long without a pending trial


class Journal(JournalStorage):
    """Optuna's ``JournalStorage`` on a :class:`~quantsearch.search.journal.JournalBackend`:
    the backend's :meth:`check` (after each trial) and :meth:`flush` (at the end of a search)
    at hand, and, when the backend group-commits, a short trial written as one record (see the
    module doc).

    Example:
        >>> import tempfile, optuna
        >>> from pathlib import Path
        >>> path = Path(tempfile.mkdtemp()) / "study.journal"
        >>> storage = Journal(JournalBackend(path, exclusive=True, group_commit_s=0.05))
        >>> study = optuna.create_study(storage=storage)
        >>> study.optimize(lambda t: t.suggest_int("x", 0, 9), n_trials=3)
        >>> storage.flush()
        >>> len(path.read_text().splitlines())  # the study, then one record a trial
        4
    """

    def __init__(self, backend: JournalBackend) -> None:
        self.backend = backend  # before Optuna's __init__, which reads the journal
        super().__init__(backend)
        if backend.witnessed:  # a search's journal, read whole: has it lost a listed trial?
            check_against_results(backend.path, self._replay_result, "holds")
        self._defer_s = backend.group_commit_s
        self._lock = threading.RLock()  # taken before Optuna's own lock, never after it
        self._pending: FrozenTrial | None = None
        self._pending_study = -1
        self._pending_since = 0.0
        self._first_dist: dict[tuple[int, str], BaseDistribution] = {}
        self._listed: dict[int, tuple[int, int, list[FrozenTrial]]] = {}  # journal_trials'
        self._watcher: threading.Thread | None = None
        if self._defer_s:
            self._start_watcher()  # now, not in the trial loop: a thread start is slow

    def check(self) -> None:
        self.backend.check()

    def _sync_with_backend(self) -> None:
        """Optuna's, with each record of another writer checked before it is replayed
        (:func:`~quantsearch.search.journal_replay.apply_checked`): damage is one line."""
        replay = self._replay_result
        logs = self._backend.read_logs(replay.log_number_read)
        apply_checked(replay, logs, self.backend.path)

    def flush(self) -> None:
        self.backend.flush()

    # -- trials: created pending, written when they finish -------------------------------

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        with self._lock:
            self._write_pending()
            if template_trial is not None or not self._defer_s:
                return super().create_new_trial(study_id, template_trial)
            trial_id, number = optuna_compat.journal_next_trial(self, study_id)
            self._pending = optuna_compat.new_running_trial(number, trial_id)
            self._pending_study, self._pending_since = study_id, time.monotonic()
            self._start_watcher()
            return trial_id

    def create_new_trials(self, study_id: int, templates: Sequence[FrozenTrial]) -> list[int]:
        """Create finished trials from ``templates``, in order, as ``create_new_trial`` creates
        each (the same ``CREATE_TRIAL`` record), with one append of their records and one
        replay (:func:`~quantsearch.search.optuna_compat.journal_create_trials`); their ids.

        With group commit the records join the group like any other; a ``kill -9`` inside the
        write that reaches the disk leaves whole records and at most one cut last one, which
        :func:`~quantsearch.search.journal_repair.repair_journal` removes: every trial is kept whole
        or lost whole, as when they were created one by one.
        """
        with self._lock:
            self._write_pending()  # its number was fixed first
            return optuna_compat.journal_create_trials(
                self, study_id, templates, only_writer=self._defer_s > 0
            )

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        with self._lock:
            p = self._pending_trial(trial_id)
            if p is None:
                return super().set_trial_param(
                    trial_id, param_name, param_value_internal, distribution
                )
            first = self._first_distribution(param_name, distribution)
            if not _same_choices(first, distribution):  # else compatible, and cheap to tell
                check_distribution_compatibility(first, distribution)  # as Optuna's replay does
            self._update(
                p,
                params={
                    **p.params,
                    param_name: distribution.to_external_repr(param_value_internal),
                },
                distributions={**p.distributions, param_name: distribution},
            )

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            p = self._pending_trial(trial_id)
            if p is None:
                return super().set_trial_user_attr(trial_id, key, value)
            self._update(p, user_attrs={**p.user_attrs, key: value})

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        with self._lock:
            p = self._pending_trial(trial_id)
            if p is None:
                return super().set_trial_system_attr(trial_id, key, value)
            self._update(p, system_attrs={**p.system_attrs, key: value})

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        with self._lock:
            p = self._pending_trial(trial_id)
            if p is None:
                return super().set_trial_intermediate_value(trial_id, step, intermediate_value)
            self._update(p, intermediate_values={**p.intermediate_values, step: intermediate_value})

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        with self._lock:
            p = self._pending_trial(trial_id)
            if p is None or not state.is_finished():
                if p is not None and state == TrialState.RUNNING:
                    return False  # it runs already (Optuna's answer for a RUNNING trial)
                self._write_pending()
                return super().set_trial_state_values(trial_id, state, values)
            done = copy.copy(p)
            done.state = state
            done.values = list(values) if values is not None else None
            done.datetime_complete = datetime.now()
            self._pending = None
            written = super().create_new_trial(self._pending_study, template_trial=done)
            assert written == trial_id, "journal: the pending trial's id was taken"
            return True

    # -- reads: the pending trial as RUNNING ----------------------------------------------

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            p = self._pending_trial(trial_id)
            return p if p is not None else super().get_trial(trial_id)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        with self._lock:  # the stored trials, listed again only after a new record
            trials = optuna_compat.journal_trials(self, study_id, self._listed)
            if states is not None:
                trials = [t for t in trials if t.state in states]
            p = self._pending
            if (
                p is not None
                and self._pending_study == study_id
                and (states is None or TrialState.RUNNING in states)
            ):
                trials = [*trials, p]
            return copy.deepcopy(trials) if deepcopy else trials

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        with self._lock:
            p = self._pending
            if p is not None and self._pending_study == study_id and p.number == trial_number:
                return p._trial_id
            return super().get_trial_id_from_study_id_trial_number(study_id, trial_number)

    # -- internals --------------------------------------------------------------------------

    def _pending_trial(self, trial_id: int) -> FrozenTrial | None:
        p = self._pending
        return p if p is not None and p._trial_id == trial_id else None

    def _update(self, p: FrozenTrial, **fields: Any) -> None:
        """Replace the pending trial by a copy with ``fields`` (new dicts), as Optuna's replay
        does: a ``Trial`` keeps and edits the object it was last given."""
        q = copy.copy(p)
        for k, v in fields.items():
            setattr(q, k, v)
        self._pending = q

    def _first_distribution(self, name: str, dist: BaseDistribution) -> BaseDistribution:
        """The distribution of ``name`` in the study's first trial that has it (Optuna checks
        every later one against it), or ``dist`` when none has."""
        key = (self._pending_study, name)
        found = self._first_dist.get(key)
        if found is None:
            for t in super().get_all_trials(self._pending_study, deepcopy=False):
                if name in t.distributions:
                    found = t.distributions[name]
                    break
            else:
                found = dist
            self._first_dist[key] = found
        return found

    def _write_pending(self) -> None:
        """Write the pending trial as it stands (RUNNING); later updates go record by record."""
        with self._lock:
            p, self._pending = self._pending, None
            if p is not None:
                written = super().create_new_trial(self._pending_study, template_trial=p)
                assert written == p._trial_id, "journal: the pending trial's id was taken"

    def _start_watcher(self) -> None:
        with self._lock:
            if self._watcher is None:
                self._watcher = threading.Thread(
                    target=self._watch, daemon=True, name="journal-watch"
                )
                self._watcher.start()

    def _watch(self) -> None:
        """Write a trial still pending ``group_commit_s`` after it started; end once no trial
        has been pending for :data:`_WATCH_IDLE_S` (the next one starts a new watcher)."""
        idle_since = time.monotonic()
        while True:
            time.sleep(min(self._defer_s / 2, _WATCH_POLL_S))
            with self._lock:
                now = time.monotonic()
                if self._pending is not None:
                    idle_since = now
                    if now - self._pending_since >= self._defer_s:
                        self._write_pending()
                elif now - idle_since >= _WATCH_IDLE_S:
                    self._watcher = None
                    return


def _same_choices(a: BaseDistribution, b: BaseDistribution) -> bool:
    """Two categorical distributions over the very same tuple of choices (``suggest_categorical``
    keeps the tuple it is given): Optuna's check compares every choice, 135 of them a knob on a
    15 x 9 per-layer space."""
    return (
        type(a) is CategoricalDistribution
        and type(b) is CategoricalDistribution
        and a.choices is b.choices
    )
