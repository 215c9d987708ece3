"""Several workers on one study: an exact shared budget, a shared cache, dead-worker reaping.

Workers on one study (``--workers K``, or the same command started on several machines against
one ``--storage``) share a :class:`Coordinator`, which the one trial loop
(:func:`quantsearch.search.study.run_study`) uses:

* :mod:`.budget`: tickets, so that the workers run ``n_trials`` trials between them;
* :mod:`.claims`: claims on config keys, so that no distinct config is evaluated twice;
* :mod:`.liveness`: dead workers' trials are failed, once, and retried;
* :mod:`.tables`: the SQL tables behind budget and claims; :mod:`.locks`: run-directory locks.

One process on the journal default shares nothing: its coordinator counts in memory and never
imports SQLAlchemy (about 0.2 s and 15 MiB); only a coordinator on a database loads it.

:func:`open_coordinator` picks the coordinator for a storage and a number of workers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING

import optuna

from quantsearch.search.parallel import tables
from quantsearch.search.parallel.budget import Budget, LocalBudget, SqlBudget, consumed_tickets
from quantsearch.search.parallel.claims import ClaimResult, Claims
from quantsearch.search.parallel.liveness import WORKER_ATTR, Liveness, worker_id
from quantsearch.search.parallel.locks import INIT_LOCK_FILE, LOCK_FILE, hold_run_dir, init_lock
from quantsearch.search.parallel.tables import insert_ignore, open_engine
from quantsearch.search.reconnect import DEFAULT_DB_RETRY_S, Reconnect
from quantsearch.search.storage import check_workers
from quantsearch.search.trial import TrialInfo

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "COORDINATION_FILE",
    "LOCK_FILE",
    "WORKER_ATTR",
    "ClaimResult",
    "Coordinator",
    "open_coordinator",
    "worker_id",
]

COORDINATION_FILE = "coordination.db"  # sidecar for several processes on the journal default


class Coordinator:
    """The budget, claims and liveness of one study, as one worker sees them.

    Args:
        budget: The shared ticket count.
        claims: Claims on config keys; ``None`` when this process is the study's only worker
            (its in-process cache then de-duplicates).
        liveness: The watch on dead workers' trials.
        alone: This process holds the run directory alone: trials RUNNING on start are orphans.
        reconnect: The study's one retry budget for a lost database connection, shared by
            budget, claims, liveness and the storage (``open_storage(reconnect=...)``): one
            outage is one ``db_retry_s``. With a budget each, a worker whose database stayed
            down waited the limit once in the storage and again in the coordinator (about
            2.5x the limit to exit).
    """

    def __init__(
        self,
        budget: Budget,
        liveness: Liveness,
        claims: Claims | None = None,
        *,
        alone: bool = False,
        engine: sa.Engine | None = None,
        lock: IO[bytes] | None = None,
        reconnect: Reconnect | None = None,
    ) -> None:
        self.budget, self.liveness, self.claims, self.alone = budget, liveness, claims, alone
        self.reconnect = reconnect or Reconnect()
        self._engine, self._lock = engine, lock

    @classmethod
    def in_memory(cls) -> Coordinator:
        """For a study in memory: one process, nothing shared."""
        budget = LocalBudget()
        return cls(budget, Liveness(budget), alone=True)

    @property
    def stale_trial_callback(self) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
        """For ``open_storage``: Optuna's heartbeats hand dead trials to it."""
        return self.liveness.stale_trial_callback

    def attach(self, study: optuna.Study) -> None:
        """Count the tickets the study's trials hold, then reap dead trials. Call it before the
        first trial."""
        self.budget.start(self.consumed(study))  # kept if another worker started the count
        self.liveness.attach(study, alone=self.alone)
        if self.alone:  # the study is the truth here: recount after the reaping
            self.budget.start(self.consumed(study))

    def consumed(self, study: optuna.Study) -> int:
        """Tickets the study's trials hold (:func:`~.budget.consumed_tickets`)."""
        trials = study.get_trials(deepcopy=False)
        retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
        return consumed_tickets([TrialInfo.from_trial(t) for t in trials], retried)

    def close(self) -> None:
        """Release the run directory lock and any connections."""
        if self._engine is not None:
            self._engine.dispose()
        if self._lock is not None:
            self._lock.close()  # closing the descriptor drops the flock
            self._lock = None

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_coordinator(
    storage_url: str | None,
    run_dir: Path,
    study_name: str,
    workers: int = 1,
    db_retry_s: float = DEFAULT_DB_RETRY_S,
    key: str = "--storage",
) -> Coordinator:
    """The coordinator for a search on ``storage_url`` (``None``: the journal default).

    * An RDB URL: budget and claims in the same database, whatever ``workers`` is, since other
      commands, on other machines, may join the study.
    * The journal default, one worker: in memory; the process holds the run directory alone (a
      second process on it is refused); a stale sidecar is removed.
    * The journal default, several workers: budget and claims in the sidecar SQLite file
      ``run_dir/coordination.db``, each worker holding the run directory shared.

    Call this in each worker process, not in a parent before it forks workers (a forked child
    inherits the parent's lock). The coordinator's :attr:`~Coordinator.reconnect` rides out a lost
    database connection for ``db_retry_s`` seconds an outage (:mod:`quantsearch.search.reconnect`);
    ``key`` (where the user gave ``storage_url``) starts its messages.

    Raises:
        ConfigError: several workers on an SQLite URL, a run directory in use, or an unreachable
            database.
    """
    check_workers(storage_url, workers, key)
    if storage_url is not None:
        reconnect = Reconnect(db_retry_s, what=key)
        return _shared(open_engine(storage_url, key=key), study_name, reconnect)
    run_dir = Path(run_dir)
    lock = hold_run_dir(run_dir, workers)
    if workers == 1:
        for suffix in ("", "-wal", "-shm"):  # no other process uses it now; its count is stale
            (run_dir / (COORDINATION_FILE + suffix)).unlink(missing_ok=True)
        budget = LocalBudget()
        return Coordinator(budget, Liveness(budget), alone=True, lock=lock)  # nothing to retry
    try:
        # Workers starting together would race to set WAL mode and create the tables, which
        # SQLite answers with "database is locked"; they take turns instead (milliseconds).
        with init_lock(run_dir / INIT_LOCK_FILE):
            engine = open_engine(f"sqlite:///{run_dir / COORDINATION_FILE}", sidecar=True)
    except BaseException:
        lock.close()
        raise
    return _shared(engine, study_name, Reconnect(db_retry_s, what=str(run_dir)), lock)


def _shared(
    engine: sa.Engine, study_name: str, reconnect: Reconnect, lock: IO[bytes] | None = None
) -> Coordinator:
    def claim_reap(trial_number: int) -> bool:
        def insert() -> bool:
            with engine.begin() as conn:
                row = {"study": study_name, "trial_number": trial_number}
                return insert_ignore(conn, tables.REAPED, [row]) == 1

        return reconnect.call(insert)

    budget = SqlBudget(engine, study_name, reconnect)
    liveness = Liveness(budget, claim_reap)
    claims = Claims(engine, study_name, liveness.owner_alive, reconnect)
    return Coordinator(budget, liveness, claims, engine=engine, lock=lock, reconnect=reconnect)
