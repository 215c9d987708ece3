"""Cross-worker coordination: a shared evaluation cache, an exact trial budget, dead-trial reaping.

Workers on one study (``--workers K``, or the same command started on several machines against
one ``--storage``) share three things through a :class:`Coordinator`:

* **Claims** on config keys, so that no distinct config is evaluated twice. ``claim(key, n)``
  answers *owned* (trial ``n`` evaluates it, then calls ``complete`` or, on failure,
  ``release``), *done* (here is the stored result), or *busy* (another live trial is evaluating
  it: ``wait`` polls until it is done, or until its owner is dead and the claim passes to ``n``).
  A claim held by a dead trial is claimable again: the owner is dead when its Optuna trial is no
  longer RUNNING (heartbeats failed it), or when the owning process, on this host, is gone.
* **Tickets**, an exact global budget: ``take_ticket(budget)`` atomically takes one of
  ``budget`` tickets, or answers ``None`` when all are taken and the worker must stop. Take one
  before each ``study.ask()``. A ticket belongs to the trial that ask() creates, and passes to its
  retry: when a dead trial is failed and a retry of it enqueued (:meth:`Coordinator.
  stale_trial_callback`), its ticket is returned, and the next ask() anywhere, which Optuna makes
  pop the waiting retry first, takes it again. So tickets in use = trials started minus dead
  trials that were retried, which never exceeds the budget. A worker killed between
  ``take_ticket`` and ``ask`` leaks its ticket: the study ends one trial short, never over. A
  trial that ends without using up the budget by the search's own rule (interrupted, say)
  gives its ticket back with ``return_ticket()``; ``attach(counted=rule)`` counts by that rule.
* **Reaping** of dead workers' trials (:meth:`Coordinator.reap`). RDB storages: Optuna's
  heartbeats (``optuna.storages.fail_stale_trials``). The journal file default has no heartbeats,
  so each trial is marked with its process (``host:pid:start-time``) while it runs
  (:meth:`Coordinator.running`) and a RUNNING trial whose process has gone is failed, once, by
  whichever worker sees it first. A single process on the journal holds the run directory's lock,
  so every RUNNING trial it finds on start is an orphan of a killed run and is reaped at once.

Implementations: :class:`LocalCoordinator` (in-process, for one process on the journal default;
rebuilt from the results the search keeps in trial user attributes) and :class:`SqlCoordinator`
(SQLAlchemy Core tables ``quantsearch_claims``, ``quantsearch_budget`` and ``quantsearch_reaped``
in the storage's own database, PostgreSQL or SQLite; for several processes on the journal
default, a sidecar SQLite file ``run_dir/coordination.db``). :func:`open_coordinator` picks one.

Typical loop (with ``Study.optimize`` instead of ask/tell: take a ticket, then
``study.optimize(objective, n_trials=1)``, and use ``running(trial, heartbeats=False)`` in the
objective, since optimize records heartbeats and reaps stale trials itself)::

    coord = open_coordinator(url, run_dir, study_name, workers)
    storage = open_storage(url, run_dir, workers=workers,
                           stale_trial_callback=coord.stale_trial_callback)
    study = optuna.create_study(storage=storage, study_name=study_name, load_if_exists=True)
    coord.attach(study, storage)          # reaps orphans, sets up liveness, counts used tickets
    while coord.take_ticket(n_trials) is not None:
        coord.reap()                      # rate-limited; fails and retries dead workers' trials
        trial = study.ask()
        with coord.running(trial):        # heartbeats (RDB) or process mark (journal)
            got = coord.claim(key, trial.number)
            if got.busy:
                got = coord.wait(key, trial.number, timeout=600)
            ...                           # owned: evaluate, then complete() or release()
        study.tell(trial, values)

Example:
    >>> c = LocalCoordinator()
    >>> c.claim("w8a8", 0).status, c.claim("w8a8", 1).status
    ('owned', 'busy')
    >>> c.complete("w8a8", 0, {"accuracy": 0.97})
    >>> c.claim("w8a8", 1).result
    {'accuracy': 0.97}
    >>> [c.take_ticket(2), c.take_ticket(2), c.take_ticket(2)]
    [1, 2, None]
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import hashlib
import json
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import optuna
import sqlalchemy as sa
import sqlalchemy.exc
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from quantsearch.errors import ConfigError
from quantsearch.search.storage import (
    DEFAULT_MAX_RETRY,
    RetryStaleTrial,
    heartbeat,
    heartbeat_interval_of,
    is_sqlite_url,
    redact_url,
    setup_lock,
)

__all__ = [
    "COORDINATION_FILE",
    "LOCK_FILE",
    "WORKER_ATTR",
    "ClaimResult",
    "Coordinator",
    "LocalCoordinator",
    "SqlCoordinator",
    "consumed_tickets",
    "open_coordinator",
    "worker_id",
]

COORDINATION_FILE = "coordination.db"  # sidecar for several processes on the journal default
LOCK_FILE = "workers.lock"  # exclusive: one process; shared: several workers on the journal
INIT_LOCK_FILE = "coordination.lock"  # held while a worker sets the sidecar up
WORKER_ATTR = "quantsearch.worker"  # trial user attribute "<trial number>@<host>:<pid>:<start>"

ClaimStatus = Literal["owned", "done", "busy"]
_RUNNING, _DONE = "running", "done"
_MAX_ATTEMPTS = 8  # claim races are resolved in one or two rounds; this only bounds the loop


@dataclass(frozen=True)
class ClaimResult:
    """The answer to a claim.

    Attributes:
        status: ``"owned"``: the asking trial evaluates the key, then calls ``complete`` or
            ``release``. ``"done"``: ``result`` holds the stored result. ``"busy"``: trial
            ``owner``, alive, is evaluating it; poll with ``wait``.
        result: The stored result when done, else ``None``.
        owner: The trial holding (or that completed) the claim, when known.
    """

    status: ClaimStatus
    result: dict[str, Any] | None = None
    owner: int | None = None

    @property
    def owned(self) -> bool:
        return self.status == "owned"

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def busy(self) -> bool:
        return self.status == "busy"


# ---------------------------------------------------------------------------------------------
# Process identity, for liveness without heartbeats (journal file default).


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from /proc, or None where unavailable."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces
    return fields[0], fields[19]  # fields 3 and 22 of proc(5)


def worker_id() -> str:
    """This process as ``host:pid:start``; the start time tells a reused pid from the original."""
    pid = os.getpid()
    stat = _proc_stat(pid)
    return f"{socket.gethostname()}:{pid}:{stat[1] if stat else ''}"


def _process_dead(worker: str | None) -> bool:
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


def consumed_tickets(
    trials: Sequence[FrozenTrial], counted: Callable[[FrozenTrial], bool] | None = None
) -> int:
    """Budget tickets a study's trials hold: started trials, less dead ones that were retried.

    A WAITING trial holds none yet; a RUNNING one holds one; a trial named in another's
    ``retry_history`` passed its ticket to the retry. ``counted`` narrows which finished trials
    hold one (the search's own rule, e.g. COMPLETE, or FAIL because of the config itself); a
    search that returns the ticket of every trial its rule does not count should pass it.
    """
    retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}

    def holds(t: FrozenTrial) -> bool:
        if t.state == TrialState.WAITING or t.number in retried:
            return False
        return t.state == TrialState.RUNNING or counted is None or counted(t)

    return sum(1 for t in trials if holds(t))


def _dumps(key: str, result: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(result), sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"result for key {key!r} must be JSON-serialisable: {exc}") from None


# ---------------------------------------------------------------------------------------------


class Coordinator(abc.ABC):
    """Claims, tickets and dead-trial reaping for one study; see the module docstring.

    Subclasses provide the storage of claims and tickets; liveness (``attach``, ``running``,
    ``reap``, ``wait``) is shared.

    Args:
        max_retry: How often one original trial may be retried after its worker died.
        is_alive: Liveness of a claim's owner trial before :meth:`attach`; default: alive.
    """

    reap_interval: float = 1.0  # seconds between two reaping passes of one worker

    def __init__(
        self,
        *,
        max_retry: int | None = DEFAULT_MAX_RETRY,
        is_alive: Callable[[int], bool] | None = None,
    ) -> None:
        self._retry = RetryStaleTrial(max_retry, on_retry=lambda _trial: self.return_ticket())
        self._is_alive = is_alive
        self._study: optuna.Study | None = None
        self._storage: BaseStorage | None = None
        self._mode: Literal["none", "heartbeat", "process", "exclusive"] = "none"
        self._exclusive = False  # set by open_coordinator when this process holds the run dir
        self._lock_file: IO[bytes] | None = None
        self._last_reap = float("-inf")
        self._failed: list[int] = []
        self._reap_lock = threading.Lock()

    # -- primitives ----------------------------------------------------------------------------

    @abc.abstractmethod
    def _try_claim(self, key: str, trial_number: int) -> tuple[ClaimResult, str | None]:
        """Insert a claim, or report the existing one (and its worker) without judging it."""

    @abc.abstractmethod
    def _take_over(self, key: str, dead_owner: int, trial_number: int) -> bool:
        """Move a running claim from ``dead_owner`` to ``trial_number`` if it is still held."""

    @abc.abstractmethod
    def complete(self, key: str, trial_number: int, result: Mapping[str, Any]) -> None:
        """Store ``result`` (JSON) for ``key``. The first result stored wins; later ones are
        dropped (an evaluation is deterministic, so they agree)."""

    @abc.abstractmethod
    def release(self, key: str, trial_number: int) -> None:
        """Give up ``trial_number``'s claim on ``key`` (its evaluation failed): claimable again."""

    @abc.abstractmethod
    def seed(self, results: Mapping[str, Mapping[str, Any]]) -> None:
        """Store known results (from a resumed study's trials) as done, keeping existing ones."""

    @abc.abstractmethod
    def results(self) -> dict[str, dict[str, Any]]:
        """Every completed key and its result."""

    @abc.abstractmethod
    def take_ticket(self, budget: int) -> int | None:
        """Take a ticket if fewer than ``budget`` are in use: its number (1-based), else None."""

    @abc.abstractmethod
    def return_ticket(self) -> None:
        """Give one ticket back (a taken ticket not used for a trial, or a retried dead one)."""

    @abc.abstractmethod
    def tickets_used(self) -> int:
        """How many tickets are in use."""

    @abc.abstractmethod
    def _init_tickets(self, used: int) -> None:
        """Start the ticket count at ``used`` (Local: always; SQL: only if no count exists)."""

    def _claim_reap(self, trial_number: int) -> bool:
        """Whether this worker is the one to fail dead ``trial_number`` (exactly one is)."""
        return True

    def close(self) -> None:
        """Release the run directory lock and any connections."""
        if self._lock_file is not None:
            self._lock_file.close()  # closing the descriptor drops the flock
            self._lock_file = None

    def __enter__(self) -> Coordinator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- claims --------------------------------------------------------------------------------

    def claim(self, key: str, trial_number: int) -> ClaimResult:
        """Atomically claim the evaluation of ``key`` for trial ``trial_number``.

        Returns *owned* (again, if this trial already holds it), *done* with the result, or
        *busy* when another live trial holds it. A claim whose owner is dead passes to this trial.
        """
        got = ClaimResult("busy")
        for _ in range(_MAX_ATTEMPTS):
            got, worker = self._try_claim(key, trial_number)
            if not got.busy:
                return got
            if got.owner is None:
                continue  # released between our insert and our read: try again
            if self._owner_alive(got.owner, worker):
                return got
            if self._take_over(key, got.owner, trial_number):
                return ClaimResult("owned", owner=trial_number)
        return got

    def wait(self, key: str, trial_number: int, timeout: float, poll: float = 0.05) -> ClaimResult:
        """Poll ``claim`` until the key is done or passes to this trial, or ``timeout`` passes.

        Returns the last answer: *busy* only if the owner was still alive and working at the end.
        """
        deadline = time.monotonic() + timeout
        delay = poll
        while True:
            got = self.claim(key, trial_number)
            left = deadline - time.monotonic()
            if not got.busy or left <= 0:
                return got
            time.sleep(min(delay, left))
            delay = min(delay * 2, 0.5)

    # -- liveness ------------------------------------------------------------------------------

    def stale_trial_callback(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """For ``open_storage(stale_trial_callback=...)``: retry a dead trial, pass its ticket on.

        Enqueues a retry (unless the chain holds ``max_retry`` retries already) and returns the
        dead trial's ticket, which the retry takes when asked.
        """
        self._failed.append(trial.number)
        self._retry(study, trial)

    def attach(
        self,
        study: optuna.Study,
        storage: BaseStorage,
        *,
        counted: Callable[[FrozenTrial], bool] | None = None,
    ) -> None:
        """Watch ``study`` (stored in ``storage``): liveness of claim owners, reaping, tickets.

        Counts the tickets the study's trials hold (:func:`consumed_tickets` with ``counted``)
        if no count is stored yet, and reaps dead trials at once: with the run directory held
        exclusively, every RUNNING trial. Call it before the first ``take_ticket``.
        """
        self._study, self._storage = study, storage
        if heartbeat_interval_of(storage) is not None:
            self._mode = "heartbeat"
        elif self._exclusive:
            self._mode = "exclusive"
        else:
            self._mode = "process"
        self._init_tickets(consumed_tickets(study.get_trials(deepcopy=False), counted))
        self.reap(force=True)
        if self._mode == "exclusive":  # the study is the truth here: recount after the reaping
            self._init_tickets(consumed_tickets(study.get_trials(deepcopy=False), counted))

    @contextlib.contextmanager
    def running(self, trial: optuna.Trial, *, heartbeats: bool = True) -> Iterator[None]:
        """Keep ``trial`` visibly alive while the block runs.

        RDB storages: Optuna heartbeats (pass ``heartbeats=False`` inside ``Study.optimize``,
        which records them itself). Journal with several processes: marks the trial with this
        process (user attribute ``quantsearch.worker``), so that others can tell it died.
        """
        if self._mode == "heartbeat" and self._storage is not None and heartbeats:
            with heartbeat(self._storage, trial):
                yield
            return
        if self._mode == "process":
            trial.set_user_attr(WORKER_ATTR, f"{trial.number}@{worker_id()}")
        yield

    def reap(self, *, force: bool = False) -> list[int]:
        """Fail the trials of dead workers and enqueue their retries; the numbers failed.

        Rate-limited to one pass per ``reap_interval`` seconds unless ``force``.
        """
        study = self._study
        if study is None or self._mode == "none":
            return []
        with self._reap_lock:
            now = time.monotonic()
            if not force and now - self._last_reap < self.reap_interval:
                return []
            self._last_reap = now
            start = len(self._failed)
            if self._mode == "heartbeat":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)  # calls stale_trial_callback
            elif (self._mode == "exclusive" and force) or self._mode == "process":
                for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                    if (self._mode == "exclusive" or _mark_dead(t)) and self._claim_reap(t.number):
                        failed = study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
                        if failed.state == TrialState.FAIL:
                            self.stale_trial_callback(study, failed)
            return self._failed[start:]

    def _owner_alive(self, owner: int, worker: str | None) -> bool:
        if _process_dead(worker):
            return False
        study = self._study
        if study is None:
            return self._is_alive(owner) if self._is_alive is not None else True
        if self._mode == "heartbeat":
            self.reap()
        running = {
            t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        }
        trial = running.get(owner)
        return trial is not None and not (self._mode == "process" and _mark_dead(trial))


def _mark_dead(trial: FrozenTrial) -> bool:
    """Whether a RUNNING trial's process mark names a dead process on this host."""
    mark = trial.user_attrs.get(WORKER_ATTR)
    if not isinstance(mark, str) or "@" not in mark:
        return False
    number, worker = mark.split("@", 1)
    # A retry inherits its origin's user attributes: a mark for another number is not its own.
    return number == str(trial.number) and _process_dead(worker)


# ---------------------------------------------------------------------------------------------


@dataclass
class _Claim:
    state: str
    owner: int | None
    result: str | None = None


class LocalCoordinator(Coordinator):
    """Claims and tickets in this process's memory, behind a lock (threads may share it).

    For one process on the journal default. Nothing here is persisted: the search keeps results
    in its trials' user attributes and rebuilds this from them on resume; :meth:`attach` recounts
    the tickets from the study.

    Args:
        results: Known results, key -> result (a resumed study's).
        tickets_used: Tickets in use at the start (``attach`` recounts them from the study).
        max_retry: See :class:`Coordinator`.
        is_alive: See :class:`Coordinator`.
    """

    def __init__(
        self,
        results: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        tickets_used: int = 0,
        max_retry: int | None = DEFAULT_MAX_RETRY,
        is_alive: Callable[[int], bool] | None = None,
    ) -> None:
        super().__init__(max_retry=max_retry, is_alive=is_alive)
        self._lock = threading.RLock()
        self._claims: dict[str, _Claim] = {}
        self._used = tickets_used
        if results:
            self.seed(results)

    def _try_claim(self, key: str, trial_number: int) -> tuple[ClaimResult, str | None]:
        with self._lock:
            c = self._claims.get(key)
            if c is None:
                self._claims[key] = _Claim(_RUNNING, trial_number)
                return ClaimResult("owned", owner=trial_number), None
            if c.state == _DONE:
                return ClaimResult("done", json.loads(c.result or "{}"), c.owner), None
            if c.owner == trial_number:
                return ClaimResult("owned", owner=trial_number), None
            return ClaimResult("busy", owner=c.owner), None

    def _take_over(self, key: str, dead_owner: int, trial_number: int) -> bool:
        with self._lock:
            c = self._claims.get(key)
            if c is None or c.state != _RUNNING or c.owner != dead_owner:
                return False
            c.owner = trial_number
            return True

    def complete(self, key: str, trial_number: int, result: Mapping[str, Any]) -> None:
        payload = _dumps(key, result)
        with self._lock:
            c = self._claims.get(key)
            if c is None or c.state != _DONE:
                self._claims[key] = _Claim(_DONE, trial_number, payload)

    def release(self, key: str, trial_number: int) -> None:
        with self._lock:
            c = self._claims.get(key)
            if c is not None and c.state == _RUNNING and c.owner == trial_number:
                del self._claims[key]

    def seed(self, results: Mapping[str, Mapping[str, Any]]) -> None:
        with self._lock:
            for key, result in results.items():
                c = self._claims.get(key)
                if c is None or c.state != _DONE:
                    self._claims[key] = _Claim(_DONE, None, _dumps(key, result))

    def results(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {
                k: json.loads(c.result or "{}") for k, c in self._claims.items() if c.state == _DONE
            }

    def take_ticket(self, budget: int) -> int | None:
        with self._lock:
            if self._used >= budget:
                return None
            self._used += 1
            return self._used

    def return_ticket(self) -> None:
        with self._lock:
            self._used = max(0, self._used - 1)

    def tickets_used(self) -> int:
        with self._lock:
            return self._used

    def _init_tickets(self, used: int) -> None:
        with self._lock:
            self._used = used


# ---------------------------------------------------------------------------------------------

_META = sa.MetaData()
_CLAIMS = sa.Table(
    "quantsearch_claims",
    _META,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("key_hash", sa.String(64), primary_key=True),  # sha256: keys may be long
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("state", sa.String(8), nullable=False),
    sa.Column("owner", sa.Integer, nullable=True),  # trial number
    sa.Column("worker", sa.String(512), nullable=True),  # worker_id() of the owner's process
    sa.Column("result", sa.Text, nullable=True),  # JSON, when done
    sa.Column("updated", sa.Float, nullable=False),  # time.time(), for people reading the table
)
_BUDGET = sa.Table(
    "quantsearch_budget",
    _META,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("used", sa.Integer, nullable=False),
)
_REAPED = sa.Table(
    "quantsearch_reaped",
    _META,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("trial_number", sa.Integer, primary_key=True),
)


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class SqlCoordinator(Coordinator):
    """Claims and tickets in SQL tables, shared by every worker that reaches the database.

    Atomicity comes from the database: a claim is an insert guarded by the primary key
    ``(study, key_hash)``; taking over a dead owner's claim and taking a ticket are conditional
    updates (``... WHERE owner = :dead``, ``SET used = used + 1 WHERE used < :budget``). Each call
    is one short transaction. On SQLite, transactions begin ``IMMEDIATE`` with a busy timeout, so
    that concurrent writers queue instead of failing with "database is locked".

    Args:
        url: An SQLAlchemy URL: the Optuna RDB storage's own, or the journal's sidecar file.
        study_name: The Optuna study's name; rows of other studies are not touched.
        sidecar: The database is ours alone (the journal's sidecar): WAL mode, fewer fsyncs.
        max_retry: See :class:`Coordinator`.
        is_alive: See :class:`Coordinator`.

    Raises:
        ConfigError: the database cannot be reached (naming ``--storage``).
    """

    def __init__(
        self,
        url: str,
        study_name: str,
        *,
        sidecar: bool = False,
        max_retry: int | None = DEFAULT_MAX_RETRY,
        is_alive: Callable[[int], bool] | None = None,
    ) -> None:
        super().__init__(max_retry=max_retry, is_alive=is_alive)
        self.study_name = study_name
        self._sqlite = is_sqlite_url(url)
        try:
            if self._sqlite:
                self._engine = sa.create_engine(url, connect_args={"timeout": 60})
                sa.event.listen(self._engine, "connect", _sqlite_on_connect(sidecar))
                sa.event.listen(self._engine, "begin", _sqlite_begin_immediate)
                if sidecar:
                    _use_wal(self._engine)
            else:
                self._engine = sa.create_engine(
                    url, pool_size=2, max_overflow=4, pool_pre_ping=True
                )
            self._create_tables(url)
        except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
            orig = getattr(exc, "orig", None)
            reason = str(orig if orig is not None else exc).strip().splitlines()[0]
            raise ConfigError(
                f"--storage: cannot open the coordination tables in {redact_url(url)!r}: {reason}"
            ) from None
        self._returning = bool(self._engine.dialect.update_returning)
        s = self.study_name
        self._where_budget = _BUDGET.c.study == s

    def _create_tables(self, url: str) -> None:
        # Workers starting together would race to create the tables (PostgreSQL fails the
        # losers); they take turns under the setup lock. The retry covers other databases.
        for attempt in range(5):
            try:
                with setup_lock(url):
                    _META.create_all(self._engine, checkfirst=True)
                return
            except (sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.IntegrityError):
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def close(self) -> None:
        self._engine.dispose()
        super().close()

    def _insert_ignore(
        self, conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]
    ) -> int:
        name = self._engine.dialect.name
        if name == "postgresql":
            return conn.execute(pg_insert(table).on_conflict_do_nothing(), rows).rowcount
        if name == "sqlite":
            return conn.execute(sqlite_insert(table).on_conflict_do_nothing(), rows).rowcount
        done = 0
        for row in rows:  # other databases: one savepoint per row
            try:
                with conn.begin_nested():
                    conn.execute(table.insert(), row)
                done += 1
            except sqlalchemy.exc.IntegrityError:
                pass
        return done

    def _claim_row(self, key: str) -> Any:
        return sa.and_(_CLAIMS.c.study == self.study_name, _CLAIMS.c.key_hash == _key_hash(key))

    def _try_claim(self, key: str, trial_number: int) -> tuple[ClaimResult, str | None]:
        row_values = {
            "study": self.study_name,
            "key_hash": _key_hash(key),
            "key": key,
            "state": _RUNNING,
            "owner": trial_number,
            "worker": worker_id(),
            "result": None,
            "updated": time.time(),
        }
        with self._engine.begin() as conn:
            if self._insert_ignore(conn, _CLAIMS, [row_values]) == 1:
                return ClaimResult("owned", owner=trial_number), None
            row = conn.execute(
                sa.select(
                    _CLAIMS.c.state, _CLAIMS.c.owner, _CLAIMS.c.worker, _CLAIMS.c.result
                ).where(self._claim_row(key))
            ).first()
        if row is None:
            return ClaimResult("busy"), None  # released in between; claim() tries again
        if row.state == _DONE:
            return ClaimResult("done", json.loads(row.result or "{}"), row.owner), None
        if row.owner == trial_number:
            return ClaimResult("owned", owner=trial_number), None
        return ClaimResult("busy", owner=row.owner), row.worker

    def _take_over(self, key: str, dead_owner: int, trial_number: int) -> bool:
        with self._engine.begin() as conn:
            res = conn.execute(
                sa.update(_CLAIMS)
                .where(self._claim_row(key), _CLAIMS.c.state == _RUNNING)
                .where(_CLAIMS.c.owner == dead_owner)
                .values(owner=trial_number, worker=worker_id(), updated=time.time())
            )
            return res.rowcount == 1

    def complete(self, key: str, trial_number: int, result: Mapping[str, Any]) -> None:
        payload = _dumps(key, result)
        done = {"state": _DONE, "owner": trial_number, "worker": worker_id(), "result": payload}
        with self._engine.begin() as conn:
            res = conn.execute(
                sa.update(_CLAIMS)
                .where(self._claim_row(key), _CLAIMS.c.state == _RUNNING)
                .values(**done, updated=time.time())
            )
            if res.rowcount == 0:  # released, taken over and done, or never claimed
                row = {"study": self.study_name, "key_hash": _key_hash(key), "key": key}
                self._insert_ignore(conn, _CLAIMS, [{**row, **done, "updated": time.time()}])

    def release(self, key: str, trial_number: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                sa.delete(_CLAIMS).where(
                    self._claim_row(key),
                    _CLAIMS.c.state == _RUNNING,
                    _CLAIMS.c.owner == trial_number,
                )
            )

    def seed(self, results: Mapping[str, Mapping[str, Any]]) -> None:
        now = time.time()
        rows = [
            {
                "study": self.study_name,
                "key_hash": _key_hash(k),
                "key": k,
                "state": _DONE,
                "owner": None,
                "worker": None,
                "result": _dumps(k, r),
                "updated": now,
            }
            for k, r in results.items()
        ]
        if rows:
            with self._engine.begin() as conn:
                self._insert_ignore(conn, _CLAIMS, rows)

    def results(self) -> dict[str, dict[str, Any]]:
        with self._engine.begin() as conn:
            rows = conn.execute(
                sa.select(_CLAIMS.c.key, _CLAIMS.c.result).where(
                    _CLAIMS.c.study == self.study_name, _CLAIMS.c.state == _DONE
                )
            ).all()
        return {r.key: json.loads(r.result or "{}") for r in rows}

    def take_ticket(self, budget: int) -> int | None:
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise TypeError(f"budget must be an int (got {budget!r})")
        self._init_tickets(0)
        stmt = (
            sa.update(_BUDGET)
            .where(self._where_budget, _BUDGET.c.used < budget)
            .values(used=_BUDGET.c.used + 1)
        )
        with self._engine.begin() as conn:
            if self._returning:
                row = conn.execute(stmt.returning(_BUDGET.c.used)).first()
                return None if row is None else int(row[0])
            if conn.execute(stmt).rowcount != 1:
                return None
            # Same transaction: the row stays locked (PostgreSQL) or the database (SQLite).
            return int(
                conn.execute(sa.select(_BUDGET.c.used).where(self._where_budget)).scalar_one()
            )

    def return_ticket(self) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(_BUDGET)
                .where(self._where_budget, _BUDGET.c.used > 0)
                .values(used=_BUDGET.c.used - 1)
            )

    def tickets_used(self) -> int:
        with self._engine.begin() as conn:
            used = conn.execute(sa.select(_BUDGET.c.used).where(self._where_budget)).scalar()
        return int(used or 0)

    def _init_tickets(self, used: int) -> None:
        if getattr(self, "_budget_row", False):
            return
        with self._engine.begin() as conn:
            self._insert_ignore(conn, _BUDGET, [{"study": self.study_name, "used": used}])
        self._budget_row = True

    def _claim_reap(self, trial_number: int) -> bool:
        with self._engine.begin() as conn:
            row = {"study": self.study_name, "trial_number": trial_number}
            return self._insert_ignore(conn, _REAPED, [row]) == 1


def _sqlite_on_connect(sidecar: bool) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA busy_timeout = 60000")
        if sidecar:  # our own file, in WAL mode (set once, see _use_wal): commits skip the fsync
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    return on_connect


def _use_wal(engine: sa.Engine) -> None:
    """Put the sidecar in WAL mode (readers never block the writer); it stays so in the file.

    Outside any transaction, as SQLite requires; open_coordinator holds the sidecar's init lock,
    so no other process is inside the file while the mode changes.
    """
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            cur.execute("PRAGMA journal_mode = WAL")
        cur.close()
    finally:
        raw.close()


def _sqlite_begin_immediate(conn: sa.Connection) -> None:
    # A deferred transaction that reads and then writes cannot wait for the write lock (SQLite
    # fails it at once with "database is locked"); taking the lock up front makes it queue.
    conn.exec_driver_sql("BEGIN IMMEDIATE")


# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _init_lock(path: Path, timeout: float = 60.0) -> Iterator[None]:
    with path.open("ab") as f:
        deadline = time.monotonic() + timeout
        while True:  # bounded by the deadline; the holder only creates tables
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"--workers: {str(path)!r} stayed locked for {timeout:.0f} s by another "
                        "worker setting up the run directory; is one stuck?"
                    ) from None
                time.sleep(0.01)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def open_coordinator(
    storage_url: str | None,
    run_dir: Path,
    study_name: str,
    workers: int = 1,
    *,
    max_retry: int | None = DEFAULT_MAX_RETRY,
) -> Coordinator:
    """The coordinator for a search on ``storage_url`` (``None``: the journal default).

    * An RDB URL: a :class:`SqlCoordinator` in the same database, whatever ``workers`` is, since
      other commands, on other machines, may join the study.
    * The journal default, one worker: a :class:`LocalCoordinator`. The process takes the run
      directory's lock exclusively, so a second process on the same run directory is refused
      (rather than silently evaluating the same configs); a stale sidecar is removed.
    * The journal default, several workers: a :class:`SqlCoordinator` on the sidecar SQLite file
      ``run_dir/coordination.db``, each worker holding the run directory's lock shared.

    Call this in each worker process, not in a parent before it forks workers (a forked child
    inherits the parent's lock).

    Raises:
        ConfigError: several workers on an SQLite URL, a run directory in use, or an unreachable
            database.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers must be an integer >= 1 (got {workers!r})")
    if storage_url is not None:
        if is_sqlite_url(storage_url) and workers > 1:
            raise ConfigError(
                f"--storage: SQLite ({redact_url(storage_url)!r}) is not safe for {workers} "
                "workers writing at once (it fails them with 'database is locked'); use a "
                "PostgreSQL URL (postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB), or omit "
                "--storage for the journal file in the run directory, or run one worker"
            )
        return SqlCoordinator(storage_url, study_name, max_retry=max_retry)

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = (run_dir / LOCK_FILE).open("ab")
    exclusive = workers == 1
    try:
        fcntl.flock(lock.fileno(), (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ConfigError(
            f"--workers: run directory {str(run_dir)!r} is in use by another quantsearch "
            f"process {'' if exclusive else 'running alone '}(got --workers {workers}); wait for "
            "it, or start all workers with the same --workers K, or use --storage postgresql://..."
        ) from None
    coord: Coordinator
    if exclusive:
        for suffix in ("", "-wal", "-shm"):  # no other process uses it now; its count is stale
            (run_dir / (COORDINATION_FILE + suffix)).unlink(missing_ok=True)
        coord = LocalCoordinator(max_retry=max_retry)
    else:
        url = f"sqlite:///{run_dir / COORDINATION_FILE}"
        try:
            # Workers starting together would race to set WAL mode and create the tables, which
            # SQLite answers with "database is locked"; they take turns instead (milliseconds).
            with _init_lock(run_dir / INIT_LOCK_FILE):
                coord = SqlCoordinator(url, study_name, sidecar=True, max_retry=max_retry)
        except BaseException:
            lock.close()
            raise
    coord._exclusive = exclusive
    coord._lock_file = lock
    return coord
