"""The SQL tables workers share: claims, the trial budget, and which dead trials were reaped.

They live in the study's own database (``--storage postgresql://...`` or ``sqlite:///...``) or,
for several workers on the journal default, in the sidecar SQLite file
``run_dir/coordination.db``. Each operation is one short transaction; atomicity comes from
primary keys and conditional updates. On SQLite, transactions begin ``IMMEDIATE`` with a busy
timeout, so that concurrent writers queue instead of failing with "database is locked".
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from quantsearch.errors import ConfigError
from quantsearch.search.storage import (
    engine_url,
    is_sqlite_url,
    redact_url,
    setup_lock,
    unreachable,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

    META: sa.MetaData
    CLAIMS: sa.Table
    BUDGET: sa.Table
    REAPED: sa.Table

__all__ = ["BUDGET", "CLAIMS", "REAPED", "insert_ignore", "key_hash", "open_engine"]

_TABLES = ("META", "CLAIMS", "BUDGET", "REAPED")


def __getattr__(name: str) -> Any:
    """``META`` and the three tables, defined on first use: SQLAlchemy (about 0.2 s and 15 MiB
    to import) is loaded only by a search that coordinates through a database, not by one
    process on the journal default, which never touches these tables."""
    if name in _TABLES:
        return _schema()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _schema() -> dict[str, Any]:
    import sqlalchemy as sa  # here, not at the top: see __getattr__

    meta = sa.MetaData()
    schema = {
        "META": meta,
        "CLAIMS": sa.Table(
            "quantsearch_claims",
            meta,
            sa.Column("study", sa.String(512), primary_key=True),
            sa.Column("key_hash", sa.String(64), primary_key=True),  # sha256: keys may be long
            sa.Column("key", sa.Text, nullable=False),
            sa.Column("state", sa.String(8), nullable=False),  # "running" or "done"
            sa.Column("owner", sa.Integer, nullable=True),  # trial number
            sa.Column("worker", sa.String(512), nullable=True),  # liveness.worker_id() of owner
            sa.Column("result", sa.Text, nullable=True),  # JSON, when done
            sa.Column("updated", sa.Float, nullable=False),  # time.time(), for people reading
        ),
        "BUDGET": sa.Table(
            "quantsearch_budget",
            meta,
            sa.Column("study", sa.String(512), primary_key=True),
            sa.Column("used", sa.Integer, nullable=False),
        ),
        "REAPED": sa.Table(
            "quantsearch_reaped",
            meta,
            sa.Column("study", sa.String(512), primary_key=True),
            sa.Column("trial_number", sa.Integer, primary_key=True),
        ),
    }
    globals().update(schema)  # later reads are plain module attributes
    return schema


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def open_engine(url: str, *, sidecar: bool = False, key: str = "--storage") -> sa.Engine:
    """An engine on ``url`` with the tables created.

    Args:
        url: An SQLAlchemy URL: the Optuna RDB storage's own, or the journal's sidecar file.
        sidecar: The database is ours alone (the journal's sidecar): WAL mode, fewer fsyncs.
        key: Where the user gave ``url``, for the message.

    Raises:
        ConfigError: the database cannot be reached (naming ``key``).
    """
    import sqlalchemy as sa  # here, not at the top: see __getattr__

    shown, url = redact_url(url), engine_url(url, key)  # postgresql://: the installed driver
    try:
        if is_sqlite_url(url):
            engine = sa.create_engine(url, connect_args={"timeout": 60})
            sa.event.listen(engine, "connect", _sqlite_on_connect(sidecar))
            sa.event.listen(engine, "begin", _sqlite_begin_immediate)
            if sidecar:
                _use_wal(engine)
            else:
                _check_not_foreign(engine, url)
        else:
            engine = sa.create_engine(url, pool_size=2, max_overflow=4, pool_pre_ping=True)
        _create_tables(engine, url)
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        orig = getattr(exc, "orig", None)
        reason = str(orig if orig is not None else exc).strip().splitlines()[0]
        raise ConfigError(unreachable(key, shown, reason)) from None
    return engine


def _check_not_foreign(engine: sa.Engine, url: str) -> None:
    """Refuse an SQLite file holding another application's tables and none of Optuna's or
    ours: the study's tables were added to it (a typo'd path to the user's own database)."""
    import sqlalchemy as sa  # here, not at the top: see __getattr__

    tables = set(sa.inspect(engine).get_table_names())
    known = {"studies", "version_info", "alembic_version"}
    if tables and not tables & known and not any(t.startswith("quantsearch_") for t in tables):
        raise ConfigError(
            f"--storage: got {redact_url(url)!r}, which holds tables of another application "
            f"({sorted(tables)[:5]}), allowed: an Optuna study database or a new file"
        )


def _create_tables(engine: sa.Engine, url: str) -> None:
    # Workers starting together would race to create the tables (PostgreSQL fails the losers);
    # they take turns under the setup lock. The retry covers other databases.
    import sqlalchemy.exc  # here, not at the top: see __getattr__

    for attempt in range(5):
        try:
            with setup_lock(url):
                _schema()["META"].create_all(engine, checkfirst=True)
            return
        except (sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.IntegrityError):
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
    """Insert ``rows``, skipping those whose primary key exists; how many were inserted."""
    import sqlalchemy.exc  # here, not at the top: see __getattr__
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    name = conn.dialect.name
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
