"""An exact trial budget shared by workers: ``n_trials`` tickets, one per trial.

A worker takes a ticket before each trial, and stops when none is left. A ticket belongs to the
trial that takes it and passes to its retry: when a dead worker's trial is failed and a retry of
it enqueued, its ticket is given back, and the next trial anywhere (which Optuna makes the
waiting retry) takes it again. So tickets in use = trials started less dead trials that were
retried, which never exceeds the budget. A trial that ends without using up the budget by
:attr:`TrialInfo.counts_toward_budget` (interrupted, say) gives its ticket back.

A worker killed between taking its ticket and starting its trial leaves a ticket that no trial
holds. The loop finds it (:func:`consumed_tickets` below what is in use, with no trial running,
for :data:`STALLED_TICKET_GRACE` seconds) and sets the count right with :meth:`Budget.recount`,
so the study still meets its budget exactly.

Example:
    >>> b = LocalBudget()
    >>> [b.take(2), b.take(2), b.take(2)]
    [1, 2, None]
    >>> b.give_back(); b.take(2)
    2
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from quantsearch.search.parallel import tables
from quantsearch.search.parallel.tables import insert_ignore
from quantsearch.search.reconnect import Reconnect, retried
from quantsearch.search.trial import TrialInfo

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["STALLED_TICKET_GRACE", "Budget", "LocalBudget", "SqlBudget", "consumed_tickets"]

# Seconds a ticket may stay taken with no trial holding it before it counts as leaked: a live
# worker starts its trial within milliseconds of taking the ticket.
STALLED_TICKET_GRACE = 10.0


def consumed_tickets(trials: Sequence[TrialInfo], retried: set[int]) -> int:
    """Tickets a study's trials hold: started trials, less dead ones that were retried.

    A WAITING trial holds none yet; a RUNNING one holds one; a finished one holds one when it
    counts toward the budget; a trial in ``retried`` (named in another's retry history) passed
    its ticket to the retry.
    """

    def holds(t: TrialInfo) -> bool:
        if t.state == "WAITING" or t.number in retried:
            return False
        return t.state == "RUNNING" or t.counts_toward_budget

    return sum(1 for t in trials if holds(t))


class Budget(abc.ABC):
    """A count of tickets in use, changed atomically by every worker of one study."""

    @abc.abstractmethod
    def take(self, budget: int) -> int | None:
        """Take a ticket if fewer than ``budget`` are in use: its number (1-based), else None."""

    @abc.abstractmethod
    def give_back(self) -> None:
        """Give one ticket back (not used for a trial, or passed to a dead trial's retry)."""

    @abc.abstractmethod
    def used(self) -> int:
        """How many tickets are in use."""

    @abc.abstractmethod
    def start(self, used: int) -> None:
        """Start the count at ``used`` unless a count is kept already (by another worker)."""

    @abc.abstractmethod
    def recount(self, seen: int, used: int) -> bool:
        """Set the count to ``used`` if it is still ``seen``: whether it was."""


class LocalBudget(Budget):
    """The count in this process's memory, behind a lock (threads share it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._used = 0

    def take(self, budget: int) -> int | None:
        with self._lock:
            if self._used >= budget:
                return None
            self._used += 1
            return self._used

    def give_back(self) -> None:
        with self._lock:
            self._used = max(0, self._used - 1)

    def used(self) -> int:
        with self._lock:
            return self._used

    def start(self, used: int) -> None:
        with self._lock:  # one process alone: the study is the truth
            self._used = used

    def recount(self, seen: int, used: int) -> bool:
        with self._lock:
            if self._used != seen:
                return False
            self._used = used
            return True


class SqlBudget(Budget):
    """The count in the ``quantsearch_budget`` table: ``SET used = used + 1 WHERE used < n``.

    Each operation is one transaction, retried on a lost connection by ``reconnect``.
    SQLAlchemy is imported here, not at the top: a search by one process on the journal
    default counts in memory (:class:`LocalBudget`) and never loads it.
    """

    def __init__(
        self, engine: sa.Engine, study_name: str, reconnect: Reconnect | None = None
    ) -> None:
        import sqlalchemy  # see the class docstring

        self._sa = sqlalchemy
        self._reconnect = reconnect or Reconnect()
        self._engine = engine
        self._study = study_name
        self._table = tables.BUDGET
        self._where = self._table.c.study == study_name
        self._returning = bool(engine.dialect.update_returning)
        self._started = False

    @retried
    def take(self, budget: int) -> int | None:
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise TypeError(f"budget must be an int (got {budget!r})")
        if not self._started:
            self.start(0)
        t, sa = self._table, self._sa
        stmt = sa.update(t).where(self._where, t.c.used < budget).values(used=t.c.used + 1)
        with self._engine.begin() as conn:
            if self._returning:
                row = conn.execute(stmt.returning(t.c.used)).first()
                return None if row is None else int(row[0])
            if conn.execute(stmt).rowcount != 1:
                return None
            # Same transaction: the row stays locked (PostgreSQL) or the database (SQLite).
            return int(conn.execute(sa.select(t.c.used).where(self._where)).scalar_one())

    @retried
    def give_back(self) -> None:
        t = self._table
        with self._engine.begin() as conn:
            conn.execute(
                self._sa.update(t).where(self._where, t.c.used > 0).values(used=t.c.used - 1)
            )

    @retried
    def used(self) -> int:
        with self._engine.begin() as conn:
            used = conn.execute(self._sa.select(self._table.c.used).where(self._where)).scalar()
        return int(used or 0)

    @retried
    def start(self, used: int) -> None:
        with self._engine.begin() as conn:
            insert_ignore(conn, self._table, [{"study": self._study, "used": used}])
        self._started = True

    @retried
    def recount(self, seen: int, used: int) -> bool:
        t = self._table
        with self._engine.begin() as conn:
            res = conn.execute(
                self._sa.update(t).where(self._where, t.c.used == seen).values(used=used)
            )
            return res.rowcount == 1
