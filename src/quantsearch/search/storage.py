"""Optuna storage for a search: a journal file in the run directory, or any Optuna RDB URL.

``open_storage(None, run_dir)`` is the default: Optuna's ``JournalStorage`` on
``run_dir/study.journal``. It was chosen over an SQLite ``RDBStorage`` (``run_dir/study.db``) by
measurement (``benchmarks/bench_storage.py``, figures in BENCHMARKS.md, "Storage"): one trial's
storage bookkeeping (``ask`` + one ~1 KB user attribute + ``tell``) costs about 2 ms on the journal
and 15-23 ms on SQLite, with random or TPE sampling, flat from 10 to 1000 trials, on a 2-core
machine. Issue 5 allows 6.7 ms a trial all included, so SQLite alone would spend two to three
times the whole budget; the journal leaves most of it to the sampler and the evaluation. Both survive ``kill -9`` (the journal appends
each operation in one ``write``, then ``fsync``), so a search resumes from its completed trials.

``--storage URL`` takes any Optuna RDB URL (``sqlite:///...``, ``postgresql+psycopg2://...``).
RDB storages get Optuna's heartbeats: ``Study.optimize``, which the trial loop runs, records one
every ``heartbeat_interval`` seconds while a trial runs, and any worker calling
``optuna.storages.fail_stale_trials`` fails a trial silent for ``grace_period`` seconds and hands
it to the stale-trial callback, by default :class:`RetryStaleTrial`, which enqueues a copy of it
for another worker. ``JournalStorage`` has no heartbeats in Optuna 5; workers on the journal
default are watched by process instead (``quantsearch.search.parallel.liveness``).

SQLAlchemy is imported only for an RDB URL, inside the functions that use it: the journal
default never loads it (about 0.2 s and 15 MiB at the start of every search).

SQLite takes one writer at a time, so several workers on one SQLite URL is refused up front,
rather than failing later with "database is locked".

Example:
    >>> import tempfile, optuna
    >>> from pathlib import Path
    >>> storage = open_storage(None, Path(tempfile.mkdtemp()))
    >>> type(storage).__name__
    'Journal'
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial

from quantsearch.errors import ConfigError, StorageError
from quantsearch.search.config import check_storage_url
from quantsearch.search.journal import JournalBackend
from quantsearch.search.journal_storage import Journal
from quantsearch.search.reconnect import (
    DEFAULT_DB_RETRY_S,
    Reconnect,
    quiet_optuna_storage_errors,
)

__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL",
    "DEFAULT_MAX_RETRY",
    "JOURNAL_FILE",
    "ResilientRDBStorage",
    "RetryStaleTrial",
    "check_reachable",
    "check_workers",
    "engine_url",
    "heartbeat_interval_of",
    "is_sqlite_url",
    "open_storage",
    "redact_url",
    "setup_lock",
]

JOURNAL_FILE = "study.journal"
DEFAULT_HEARTBEAT_INTERVAL = 5  # seconds; a dead worker's trial is failed after 2x this
DEFAULT_MAX_RETRY = 3  # a trial that kills its worker (out of memory, say) is not retried forever

_URL_EXAMPLES = "sqlite:///runs/study.db or postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB"


def redact_url(url: str) -> str:
    """The URL with its password masked, for messages and logs.

    Example:
        >>> redact_url("postgresql://bob:secret@db:5432/runs")
        'postgresql://bob:***@db:5432/runs'
    """
    import sqlalchemy.exc  # here, not at the top: only RDB URLs need it (module docstring)
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return url


def is_sqlite_url(url: str | None) -> bool:
    """Whether ``url`` names an SQLite database (``sqlite://`` or ``sqlite+driver://``)."""
    return url is not None and url.split(":", 1)[0].split("+", 1)[0].lower() == "sqlite"


def check_workers(url: str | None, workers: int, key: str = "--storage") -> None:
    """Refuse ``workers`` processes on ``url`` unless they can write to it at once.

    ``key`` is where the user gave ``url`` (``--storage`` or ``search.storage``).

    Raises:
        ConfigError: ``workers`` is not a positive integer, a URL whose driver is not installed
            (:func:`engine_url`), or several workers on SQLite, which serialises writers and
            fails them with "database is locked" under load.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers: got {workers!r}, allowed: an integer >= 1")
    if url is not None:
        engine_url(url, key)
    if url is not None and is_sqlite_url(url) and workers > 1:
        raise ConfigError(
            f"{key}: got SQLite ({redact_url(url)!r}) for {workers} workers, not safe when "
            "they write at once ('database is locked'), allowed: a PostgreSQL URL "
            "(postgresql+psycopg2://USER:PASSWORD@HOST:PORT/DB), no --storage (the journal "
            "file in the run directory), or one worker"
        )


def check_reachable(url: str | None, key: str = "--storage") -> None:
    """Connect once to ``url``'s database and hang up, so that a server that is down, or refuses
    these credentials, is one line before the model loads and any worker starts (a
    ``search --workers 2`` found it 20 s later, in its workers' logs). The journal default and
    SQLite files are not opened (connecting would create the file).

    Raises:
        ConfigError: naming ``key``, as :func:`open_storage` does for a database it cannot open.
    """
    if url is None or is_sqlite_url(url):
        return
    import sqlalchemy  # here, not at the top: only RDB URLs need it (module docstring)
    import sqlalchemy.exc
    import sqlalchemy.pool

    engine = sqlalchemy.create_engine(engine_url(url, key), poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect():
            pass
    except (sqlalchemy.exc.SQLAlchemyError, ImportError) as exc:
        raise ConfigError(unreachable(key, redact_url(url), _first_line(exc))) from None
    finally:
        engine.dispose()


# PostgreSQL drivers, the one the `postgres` extra installs (pyproject.toml) first.
_PG_DRIVERS = ("psycopg2", "psycopg")


def engine_url(url: str, key: str = "--storage") -> str:
    """The URL to connect with: one that names no driver gets the installed one.

    SQLAlchemy 2.1 reads ``postgresql://`` as psycopg 3's, and ``postgres://`` not at all;
    quantsearch's ``postgres`` extra installs psycopg2. Either URL connects through the
    PostgreSQL driver installed here (psycopg2 first); a URL that names its driver keeps it.
    Only the spec of a driver is looked up: nothing connects, nothing heavy is imported.

    Example:
        >>> engine_url("postgresql://bob@db/runs")  # psycopg2 installed (the dev extra)
        'postgresql+psycopg2://bob@db/runs'

    Raises:
        ConfigError: naming ``key``: a URL SQLAlchemy cannot read, or whose driver (or, with
            none named, any PostgreSQL driver) is not installed.
    """
    import importlib.util

    import sqlalchemy.exc  # here, not at the top: only RDB URLs need it (module docstring)
    from sqlalchemy.engine import make_url

    shown = redact_url(url)
    try:
        parsed = make_url(url)
        if parsed.drivername in ("postgresql", "postgres"):
            found = [d for d in _PG_DRIVERS if importlib.util.find_spec(d) is not None]
            if not found:
                raise ImportError(name=_PG_DRIVERS[0])
            parsed = parsed.set(drivername=f"postgresql+{found[0]}")
        elif parsed.get_backend_name() != "sqlite":  # the standard library's sqlite3 is there
            parsed.get_dialect().import_dbapi()
    except ImportError as exc:
        raise ConfigError(
            f"{key}: got {shown!r}, whose driver {exc.name or exc} is not installed here, "
            f"allowed: a URL of an installed driver, such as {_URL_EXAMPLES} "
            "(pip install 'quantsearch[postgres]' installs psycopg2)"
        ) from None
    except (sqlalchemy.exc.ArgumentError, ValueError) as exc:
        raise ConfigError(
            f"{key}: got {shown!r} ({_first_line(exc)}), allowed: an Optuna RDB URL such as "
            f"{_URL_EXAMPLES}"
        ) from None
    return parsed.render_as_string(hide_password=False)


def _positive(value: int | None, name: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{name}: got {value!r}, allowed: a positive integer of seconds")
    return value


def open_storage(
    url: str | None,
    run_dir: Path,
    *,
    workers: int = 1,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    exclusive: bool = False,
    group_commit_s: float = 0.0,
    db_retry_s: float = DEFAULT_DB_RETRY_S,
    reconnect: Reconnect | None = None,
) -> BaseStorage:
    """Open the storage a search writes its trials to.

    Args:
        url: ``None`` for the default, a journal file in ``run_dir``; otherwise any Optuna RDB URL
            (the ``--storage`` option).
        run_dir: The run directory; created if missing (the default's file lives there).
        workers: How many worker processes will write to this storage at once. More than one on
            an SQLite URL is refused: SQLite serialises writers and fails them with "database is
            locked" under load.
        heartbeat_interval: Seconds between heartbeats of a running trial, RDB storages only
            (default :data:`DEFAULT_HEARTBEAT_INTERVAL`). Ignored for the journal, which has none.
        grace_period: Seconds without a heartbeat after which a running trial counts as dead
            (default: twice ``heartbeat_interval``, Optuna's rule).
        stale_trial_callback: Called by ``optuna.storages.fail_stale_trials`` for each trial it
            failed; default ``RetryStaleTrial()``, which enqueues a retry. The search passes its
            coordinator's, which also gives the dead trial's budget ticket to the retry.
        exclusive: the journal default only: this process holds the run directory alone (its
            coordinator's lock), so the journal's cut last record is repaired and a stale lock
            cleared on open (:mod:`quantsearch.search.journal`). Never for a reader beside
            running workers.
        group_commit_s: the journal default with ``exclusive`` only: group commit's longest
            delay (0: every record written at once).
        db_retry_s: RDB storages only: how long an outage (a database restart) is ridden
            out before the operation meeting it fails in one line (:mod:`~.reconnect`).
        reconnect: RDB storages only: the study's one retry budget, shared with its
            coordinator (:attr:`~quantsearch.search.parallel.Coordinator.reconnect`), whose
            limit and key it sets instead of ``db_retry_s`` and ``--storage``; default: a
            budget of the storage's own.

    Returns:
        A :class:`~quantsearch.search.journal_storage.Journal` or an ``RDBStorage`` with
        heartbeats on.

    Raises:
        ConfigError: a bad or unreachable URL (naming ``--storage``, or ``reconnect``'s key),
            an SQLite URL with several workers, or a non-positive heartbeat setting.
    """
    reconnect = reconnect or Reconnect(db_retry_s)
    key = reconnect.what
    check_workers(url, workers, key)
    _positive(heartbeat_interval, "heartbeat_interval")
    _positive(grace_period, "grace_period")
    run_dir = Path(run_dir)
    if url is None:
        run_dir.mkdir(parents=True, exist_ok=True)
        backend = JournalBackend(
            run_dir / JOURNAL_FILE, exclusive=exclusive, group_commit_s=group_commit_s
        )
        return Journal(backend)

    import sqlalchemy.exc  # here, not at the top: only RDB URLs need it (module docstring)
    from sqlalchemy.engine import make_url

    shown = redact_url(url)
    check_storage_url(url, key)  # an in-memory SQLite database is refused
    target = engine_url(url, key)  # parsed by check_workers: readable, its driver installed
    parsed = make_url(target)
    engine_kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() != "sqlite":
        engine_kwargs["pool_pre_ping"] = True  # survive a database restart between trials
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        callback = stale_trial_callback or RetryStaleTrial()
        try:
            with setup_lock(target):  # N workers on a fresh database: one creates the tables
                storage = ResilientRDBStorage(
                    target,
                    reconnect,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval or DEFAULT_HEARTBEAT_INTERVAL,
                    grace_period=grace_period,
                    heartbeat_stale_trial_callback=callback,
                )
        except (sqlalchemy.exc.SQLAlchemyError, ImportError, RuntimeError) as exc:
            raise ConfigError(unreachable(key, shown, _first_line(exc))) from None
    return storage


def unreachable(key: str, shown: str, reason: str) -> str:
    """The one line for a database that cannot be opened at the start (down, refused, a wrong
    password): it was never reached, so there is no outage to ride out."""
    return (
        f"{key}: got {shown!r} ({reason}), allowed: an Optuna RDB URL of a database that is "
        f"running and accepts these credentials from here, such as {_URL_EXAMPLES}"
    )


class ResilientRDBStorage(RDBStorage):
    """Optuna's ``RDBStorage`` whose every operation rides out a lost connection.

    Each storage method is one transaction; on a lost connection it is run again, with backoff,
    by ``reconnect`` (:mod:`quantsearch.search.reconnect`: an outage's budget, which the study's
    coordinator shares), then fails with a one-line ``StorageError``. A heartbeat that cannot be
    recorded is skipped (the heartbeat thread must not die with a traceback; the trial loop
    reports a lasting loss).
    """

    def __init__(self, url: str, reconnect: Reconnect, **kwargs: Any) -> None:
        self._reconnect = reconnect  # before RDBStorage's own set-up, which may query
        # In every process that opens one, the trial loop's and the parent of `--workers` that
        # only watches the study alike: Optuna's warnings for a lost connection are dropped.
        quiet_optuna_storage_errors()
        super().__init__(url, **kwargs)

    def has_heartbeat(self, trial_id: int) -> bool:
        """Whether any heartbeat was recorded for the trial. One that has none was cut off
        before its first beat (by a database outage, say): Optuna never finds it stale."""
        from optuna.storages._rdb import models  # Optuna's own table; no public reader

        def query() -> bool:
            with self.scoped_session() as session:
                return models.TrialHeartbeatModel.where_trial_id(trial_id, session) is not None

        return self._reconnect.call(query)

    def record_heartbeat(self, trial_id: int) -> None:
        with suppress(StorageError):
            self._reconnect.call(lambda: RDBStorage.record_heartbeat(self, trial_id))


def _resilient(name: str) -> Callable[..., Any]:
    base = getattr(RDBStorage, name)

    def method(self: ResilientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self._reconnect.call(lambda: base(self, *args, **kwargs))

    method.__name__ = method.__qualname__ = name
    method.__doc__ = base.__doc__
    return method


# Every operation of Optuna's storage interface that RDBStorage implements, the heartbeat query
# that fail_stale_trials runs, and the private methods Optuna's _CachedStorage (the wrapper
# create_study puts around an RDB storage) calls on it directly: a restart during a suggest
# reached set_trial_param through _set_trial_param and failed the trial with a traceback.
_PRIVATE_CALLS = [
    "_get_stale_trial_ids", "_create_new_trial", "_set_trial_param", "_get_best_trial_id",
    "_get_trials",
]  # fmt: skip
for _name in [n for n in vars(BaseStorage) if not n.startswith("_")] + _PRIVATE_CALLS:
    if callable(getattr(RDBStorage, _name, None)):
        setattr(ResilientRDBStorage, _name, _resilient(_name))


# pg_advisory_lock key for table creation: any fixed 64-bit number, the same in every worker.
_SETUP_LOCK_KEY = int.from_bytes(b"qsearch!", "big") & 0x7FFF_FFFF_FFFF_FFFF


@contextmanager
def setup_lock(url: str, timeout_s: int = 60) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock while the block creates tables (no-op elsewhere).

    Workers started together on a fresh database all run ``CREATE TABLE``; PostgreSQL fails all
    but one with a duplicate key in ``pg_type``. Under this lock they take turns, and the later
    ones find the tables made. The lock is the database session's, so a killed holder frees it.
    """
    import sqlalchemy  # here, not at the top: only RDB URLs need it (module docstring)
    import sqlalchemy.pool
    from sqlalchemy.engine import make_url

    if make_url(url).get_backend_name() != "postgresql":
        yield
        return
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"SET lock_timeout = '{int(timeout_s)}s'"))
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": _SETUP_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(
                    sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": _SETUP_LOCK_KEY}
                )
                conn.commit()
    finally:
        engine.dispose()


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)  # the driver's own error, without SQLAlchemy's boilerplate
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class RetryStaleTrial:
    """Stale-trial callback: enqueue a retry of a dead worker's trial, then call ``on_retry``.

    Optuna's ``RetryHeartbeatStaleTrialCallback`` does the enqueueing (a WAITING trial with the
    same parameters, user attributes, and ``failed_trial``/``retry_history`` system attributes);
    ``on_retry(trial)`` runs only when a retry was enqueued, so a coordinator can hand the dead
    trial's budget ticket to it. A trial whose chain already holds ``max_retry`` retries stays
    failed.

    Args:
        max_retry: How many times one original trial may be retried; ``None`` for no limit.
        on_retry: Called with the dead trial after its retry was enqueued.
    """

    def __init__(
        self,
        max_retry: int | None = DEFAULT_MAX_RETRY,
        on_retry: Callable[[FrozenTrial], None] | None = None,
    ) -> None:
        self.max_retry = max_retry
        self.on_retry = on_retry
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)

    def will_retry(self, trial: FrozenTrial) -> bool:
        """Whether this dead trial gets a retry (Optuna's rule: chain length <= ``max_retry``)."""
        history = trial.system_attrs.get("retry_history", [])
        return self.max_retry is None or len(history) + 1 <= self.max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if not self.will_retry(trial):
            return
        self._retry(study, trial)
        if self.on_retry is not None:
            self.on_retry(trial)


def heartbeat_interval_of(storage: BaseStorage) -> int | None:
    """The storage's heartbeat interval in seconds, or ``None`` when it has no heartbeats."""
    getter = getattr(storage, "get_heartbeat_interval", None)
    return getter() if callable(getter) else None
