"""Riding out a lost database connection: retry with backoff for a bounded time, then one line.

A PostgreSQL restart (or a network blip) drops every open connection: the next statement of each
worker fails with ``OperationalError`` (Optuna re-raises it as ``StorageInternalError`` from the
original). Each storage and coordination operation is one short transaction, so it is retried
whole, with a growing pause (0.25 s doubling to 5 s), for at most ``limit_s`` seconds
(``search.db_retry_s``, default :data:`DEFAULT_DB_RETRY_S`). The engines use ``pool_pre_ping``, so
the retry gets a fresh connection as soon as the server answers again. Past the limit the
operation raises :class:`~quantsearch.errors.StorageError`, one line that says how to resume.

Only connection errors are retried (a ``DBAPIError`` whose connection was invalidated, or an
``OperationalError``/``InterfaceError``); a constraint violation or a bug still raises at once.

Example:
    >>> import sqlalchemy.exc
    >>> calls = []
    >>> def flaky() -> str:
    ...     calls.append(1)
    ...     if len(calls) < 3:
    ...         raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed"))
    ...     return "ok"
    >>> Reconnect(10, first_pause=0.001).call(flaky), len(calls)
    ('ok', 3)
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from typing import Concatenate, ParamSpec, TypeVar

from quantsearch.errors import StorageError

__all__ = [
    "DEFAULT_DB_RETRY_S",
    "Reconnect",
    "is_disconnect",
    "quiet_optuna_storage_errors",
    "retried",
]

T = TypeVar("T")
S = TypeVar("S")
P = ParamSpec("P")

DEFAULT_DB_RETRY_S = 60.0  # seconds a worker waits for its database before it gives up


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is a lost database connection.

    Without SQLAlchemy loaded no database was opened, so nothing was lost: the journal default
    never imports it (about 0.2 s and 15 MiB), and neither does this check.
    """
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is None:
        return False
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, sqlalchemy_exc.DBAPIError) and (
            e.connection_invalidated
            or isinstance(e, (sqlalchemy_exc.OperationalError, sqlalchemy_exc.InterfaceError))
        ):
            return True
        e = e.__cause__ or e.__context__
    return False


class Reconnect:
    """Calls an operation again while it fails with a lost connection, for up to ``limit_s``.

    Args:
        limit_s: The longest time to keep trying, from the first failure of one call.
        what: The option the user gave the database with, for the message.
        first_pause: The first pause between two tries (it doubles, up to 5 s).
    """

    def __init__(
        self,
        limit_s: float = DEFAULT_DB_RETRY_S,
        what: str = "--storage",
        first_pause: float = 0.25,
    ) -> None:
        self.limit_s, self.what, self.first_pause = float(limit_s), what, first_pause
        # When the connection was first found lost, until a call succeeds again: one outage
        # is one budget for every call (and thread) of this object. Per call, a worker that
        # gave up waited the limit again in each operation of its way out (ticket, trial,
        # claims): 6 s to exit with a limit of 1 s.
        self._down_since: float | None = None

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, retried on a lost connection.

        Raises:
            StorageError: the connection stayed lost for ``limit_s`` seconds, counted from
                the first failure of this outage, whichever call met it.
        """
        pause = self.first_pause
        while True:
            try:
                result = fn()
            except Exception as exc:
                if not is_disconnect(exc):
                    raise
                now = time.monotonic()
                # read once: another thread's success may set it to None between two reads
                since = self._down_since
                if since is None:
                    since = self._down_since = now
                left = self.limit_s - (now - since)
                if left <= 0:
                    raise StorageError(self.message(exc)) from None
                time.sleep(min(pause, left))
                pause = min(pause * 2, 5.0)
            else:
                self._down_since = None
                return result

    def message(self, exc: BaseException) -> str:
        return (
            f"{self.what}: lost the database connection and could not reconnect within "
            f"{self.limit_s:g} s ({_first_line(exc)}); the study is kept: run the same command "
            "to resume it once the database is back"
        )


def _first_line(exc: BaseException) -> str:
    import sqlalchemy.exc  # only after is_disconnect found it loaded

    e: BaseException | None = exc
    while e is not None and not isinstance(e, sqlalchemy.exc.DBAPIError):
        e = e.__cause__ or e.__context__
    orig = getattr(e, "orig", None) if e is not None else None
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _DropStorageErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, StorageError):
            return False
        # Optuna's RDB storage falls back to a slower query on any OperationalError (meant for
        # SQLite's limit on IN variables) and warns with the whole SQL; a lost connection takes
        # that path too, and its warning came before the one line the retry ends in.
        return not record.getMessage().startswith(_FALLBACK_WARNING)


_FALLBACK_WARNING = "Caught an error from sqlalchemy"


_FILTER = _DropStorageErrors()


def quiet_optuna_storage_errors() -> None:
    """Keep Optuna from logging a trial's traceback for a StorageError, or its warning that a
    failed query falls back to a slower one: the CLI prints its one line. Idempotent."""
    import optuna.logging  # Optuna's handler is set up on first use: before it gets the filter

    logger = optuna.logging.get_logger("optuna")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    for handler in logger.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)


def retried(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """A method retried by its object's ``_reconnect`` (a :class:`Reconnect`)."""

    @functools.wraps(method)
    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        reconnect: Reconnect = getattr(self, "_reconnect", None) or Reconnect()
        return reconnect.call(lambda: method(self, *args, **kwargs))

    return wrapper
