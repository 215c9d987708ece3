"""Which workers are dead, and what becomes of their trials: failed once, then retried.

A trial shows it is alive in two ways. RDB storages: Optuna's heartbeats, recorded by
``Study.optimize`` while the objective runs; a trial silent for the grace period is failed by
``optuna.storages.fail_stale_trials`` and handed to the storage's stale-trial callback. Every
storage: the objective first marks its trial with its process (:func:`mark`, user attribute
``quantsearch.worker``: ``<trial number>@<host>:<pid>:<start time>``); a RUNNING trial whose
own mark names a process on this host that has ended is dead. The journal file default has no
heartbeats, so the marks are all it has: there, a trial left without a mark of its own for
:data:`UNMARKED_GRACE` seconds is dead too (its worker died between creating it and marking it,
which a live worker does within milliseconds). On RDB storages heartbeats cover that moment, and
a trial of an older quantsearch, which does not mark its trials, is not taken for dead. A single process on the journal holds its run directory alone, so every RUNNING
trial it finds on start is an orphan of a killed run.

A dead trial is failed, by exactly one worker, and a retry of it (same parameters) enqueued,
unless its chain already holds ``max_retry`` retries; its budget ticket passes to the retry.
A dead trial that never began (no mark, no parameter, not a retry) is failed and not retried:
there is nothing to retry, and it may hold no ticket. A database restart leaves such trials: the
creation of a trial commits, its reply is lost with the connection, and the storage's retry
(:mod:`~quantsearch.search.reconnect`) creates the trial the worker runs beside it. Retrying it
gave the study one trial above its budget; a ticket a killed worker's unbegun trial did hold
comes back by the stalled-ticket recount (:mod:`~quantsearch.search.parallel.budget`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from quantsearch.search.optuna_compat import study_storage
from quantsearch.search.parallel.budget import Budget
from quantsearch.search.storage import DEFAULT_MAX_RETRY, RetryStaleTrial, heartbeat_interval_of
from quantsearch.trial_attrs import WORKER_ATTR  # "<trial number>@<host>:<pid>:<start>"

__all__ = ["UNMARKED_GRACE", "WORKER_ATTR", "Liveness", "mark", "process_dead", "worker_id"]

UNMARKED_GRACE = 30.0  # seconds a RUNNING trial may stay unmarked before it counts as dead


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from /proc, or None where unavailable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    return fields[0], fields[19]  # fields 3 and 22 of proc(5)


def worker_id() -> str:
    """This process as ``host:pid:start``; the start time tells a reused pid from the original.

    Kept per process id (every trial marks itself with it; reading ``/proc`` each time cost a
    tenth of a millisecond a trial), so a forked child computes its own.
    """
    global _WORKER_ID
    pid = os.getpid()
    if _WORKER_ID is None or _WORKER_ID[0] != pid:
        stat = _proc_stat(pid)
        _WORKER_ID = (pid, f"{socket.gethostname()}:{pid}:{stat[1] if stat else ''}")
    return _WORKER_ID[1]


_WORKER_ID: tuple[int, str] | None = None


def process_dead(worker: str | None) -> bool:
    """Whether ``worker`` (from :func:`worker_id`) is a process on this host that has ended."""
    if not worker:
        return False
    try:
        host, pid_text, start = worker.rsplit(":", 2)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False  # another machine's process: only heartbeats can tell
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, owned by another user
    stat = _proc_stat(pid)
    if stat is None:
        return False
    state, started = stat
    return state in ("Z", "X") or (bool(start) and started != start)  # zombie, or pid reused


def mark(trial: Trial) -> None:
    """Mark ``trial`` as run by this process: the first thing its objective does."""
    trial.set_user_attr(WORKER_ATTR, f"{trial.number}@{worker_id()}")


def _dead(trial: FrozenTrial, unmarked_grace: float | None) -> bool:
    """Whether a RUNNING trial's worker is dead, as far as its mark (or its lack) tells."""
    own = f"{trial.number}@"
    label = trial.user_attrs.get(WORKER_ATTR)
    if isinstance(label, str) and label.startswith(own):
        return process_dead(label[len(own) :])
    # No mark of its own (a retry inherits its origin's): dead if it stayed so too long.
    start = trial.datetime_start
    if unmarked_grace is None or start is None:
        return False
    return (datetime.now() - start).total_seconds() > unmarked_grace


def _began(trial: FrozenTrial) -> bool:
    """Whether ``trial`` got as far as its objective (marked, with a parameter), or has
    parameters to run again (a retry, an enqueued trial)."""
    return bool(
        trial.params
        or WORKER_ATTR in trial.user_attrs
        or "failed_trial" in trial.system_attrs
        or "fixed_params" in trial.system_attrs  # enqueued: its parameters are fixed
    )


class Liveness:
    """Watches one study's trials for dead workers; fails and retries their trials.

    Args:
        budget: Gets the ticket of each dead trial that is retried.
        claim_reap: Whether this worker is the one to fail dead trial ``n`` (exactly one is).
        max_retry: How often one original trial may be retried after its worker died.
    """

    interval = 1.0  # seconds between two reaping passes of one worker

    def __init__(
        self,
        budget: Budget,
        claim_reap: Callable[[int], bool] = lambda _n: True,
        max_retry: int | None = DEFAULT_MAX_RETRY,
    ) -> None:
        self._retry = RetryStaleTrial(max_retry, on_retry=lambda _trial: budget.give_back())
        self._claim_reap = claim_reap
        self.study: optuna.Study | None = None
        self._heartbeats = False
        self._last = float("-inf")
        self._failed: list[int] = []
        self._lock = threading.Lock()

    def stale_trial_callback(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """For ``open_storage(stale_trial_callback=...)``: retry a dead trial, pass its ticket."""
        self._failed.append(trial.number)
        self._retry(study, trial)

    def attach(self, study: optuna.Study, *, alone: bool) -> None:
        """Watch ``study``; ``alone``: this process holds the run directory, so every trial
        RUNNING now is an orphan of a killed run, and is reaped at once."""
        self.study = study
        self._heartbeats = heartbeat_interval_of(study_storage(study)) is not None
        self.reap(force=True, every_running=alone)

    def reap(self, *, force: bool = False, every_running: bool = False) -> list[int]:
        """Fail the trials of dead workers and enqueue their retries; the numbers failed.

        Rate-limited to one pass per :attr:`interval` seconds unless ``force``.
        """
        study = self.study
        if study is None:
            return []
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < self.interval:
                return []
            self._last = now
            start = len(self._failed)
            if self._heartbeats:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)  # calls stale_trial_callback
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                if (every_running or self._dead(t)) and self._claim_reap(t.number):
                    failed = study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                    if failed.state != TrialState.FAIL:
                        continue
                    if _began(failed):
                        self.stale_trial_callback(study, failed)
                    else:  # nothing to retry, and perhaps no ticket (the module doc)
                        self._failed.append(failed.number)
            return self._failed[start:]

    def owner_alive(self, owner: int, worker: str | None) -> bool:
        """Whether trial ``owner``, run by ``worker``, is still running and alive."""
        if process_dead(worker):
            return False
        study = self.study
        if study is None:
            return True
        if self._heartbeats:
            self.reap()
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        trial = next((t for t in running if t.number == owner), None)
        return trial is not None and not self._dead(trial)

    def _dead(self, trial: FrozenTrial) -> bool:
        if not self._heartbeats:
            return _dead(trial, UNMARKED_GRACE)
        # Heartbeats judge a trial once it has beaten; one never marked and never beaten for
        # UNMARKED_GRACE was cut off at its start (a database outage): Optuna never fails it.
        if _dead(trial, None) or not _dead(trial, UNMARKED_GRACE):
            return _dead(trial, None)
        return not self._has_heartbeat(trial)

    def _has_heartbeat(self, trial: FrozenTrial) -> bool:
        has = getattr(self.study and study_storage(self.study), "has_heartbeat", None)
        if has is None:  # wrapped by Optuna's cache: ask the storage beneath
            backend = getattr(self.study and study_storage(self.study), "_backend", None)
            has = getattr(backend, "has_heartbeat", None)
        return True if has is None else bool(has(trial._trial_id))
