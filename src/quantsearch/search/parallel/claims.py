"""Claims on config keys, so that no distinct config is evaluated twice across workers.

``claim(key, n)`` answers *owned* (trial ``n`` evaluates it, then calls ``complete`` or, on
failure, ``release``), *done* (here is the stored result), or *busy* (another live trial is
evaluating it: ``wait`` polls until it is done, or until its owner is dead and the claim passes
to ``n``). A claim is an insert guarded by the primary key ``(study, key_hash)``; taking over a
dead owner's claim is ``UPDATE ... WHERE owner = :dead``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from quantsearch.search.parallel import tables
from quantsearch.search.parallel.liveness import worker_id
from quantsearch.search.parallel.tables import insert_ignore, key_hash
from quantsearch.search.reconnect import Reconnect, retried

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["ClaimResult", "Claims"]

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


class Claims:
    """The claims of one study in the ``quantsearch_claims`` table.

    Args:
        engine: The database (see :func:`~quantsearch.search.parallel.tables.open_engine`).
        study_name: The Optuna study's name; rows of other studies are not touched.
        owner_alive: ``(trial number, worker id) -> bool``: whether a claim's owner still works.
        reconnect: retries each transaction on a lost connection.

    SQLAlchemy is imported when one is made, not at the top: a search by one process on the
    journal default has no claims (its cache de-duplicates) and never loads it.
    """

    def __init__(
        self,
        engine: sa.Engine,
        study_name: str,
        owner_alive: Callable[[int, str | None], bool],
        reconnect: Reconnect | None = None,
    ) -> None:
        import sqlalchemy  # see the class docstring

        self._sa = sqlalchemy
        self._t = tables.CLAIMS
        self._reconnect = reconnect or Reconnect()
        self._engine = engine
        self._study = study_name
        self._owner_alive = owner_alive

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

    @retried
    def complete(self, key: str, trial_number: int, result: Mapping[str, Any]) -> None:
        """Store ``result`` (JSON) for ``key``. The first result stored wins; later ones are
        dropped (an evaluation is deterministic, so they agree)."""
        payload = _dumps(key, result)
        done = {"state": _DONE, "owner": trial_number, "worker": worker_id(), "result": payload}
        with self._engine.begin() as conn:
            res = conn.execute(
                self._sa.update(self._t)
                .where(self._row(key), self._t.c.state == _RUNNING)
                .values(**done, updated=time.time())
            )
            if res.rowcount == 0:  # released, taken over and done, or never claimed
                row = {"study": self._study, "key_hash": key_hash(key), "key": key}
                insert_ignore(conn, self._t, [{**row, **done, "updated": time.time()}])

    @retried
    def release(self, key: str, trial_number: int) -> None:
        """Give up ``trial_number``'s claim on ``key`` (its evaluation failed): claimable again."""
        with self._engine.begin() as conn:
            conn.execute(
                self._sa.delete(self._t).where(
                    self._row(key), self._t.c.state == _RUNNING, self._t.c.owner == trial_number
                )
            )

    @retried
    def results(self) -> dict[str, dict[str, Any]]:
        """Every completed key and its result."""
        with self._engine.begin() as conn:
            rows = conn.execute(
                self._sa.select(self._t.c.key, self._t.c.result).where(
                    self._t.c.study == self._study, self._t.c.state == _DONE
                )
            ).all()
        return {r.key: json.loads(r.result or "{}") for r in rows}

    def in_flight(self, enough: int) -> int:
        """Config keys (not ``point:`` claims) that a live trial is evaluating now, counted up
        to ``enough``: what a search stopping on exhaustion has in hand besides the results."""
        found = 0
        for owner, worker in self._running():
            if found >= enough:
                break
            found += self._owner_alive(owner, worker)
        return found

    @retried
    def _running(self) -> list[tuple[int, str | None]]:
        """Owner and worker of each running claim on a config key."""
        t = self._t
        with self._engine.begin() as conn:
            rows = conn.execute(
                self._sa.select(t.c.owner, t.c.worker).where(
                    t.c.study == self._study, t.c.state == _RUNNING, ~t.c.key.startswith("point:")
                )
            ).all()
        return [(r.owner, r.worker) for r in rows]

    def _row(self, key: str) -> sa.ColumnElement[bool]:
        return self._sa.and_(self._t.c.study == self._study, self._t.c.key_hash == key_hash(key))

    @retried
    def _try_claim(self, key: str, trial_number: int) -> tuple[ClaimResult, str | None]:
        """Insert a claim, or report the existing one (and its worker) without judging it."""
        row_values = {
            "study": self._study,
            "key_hash": key_hash(key),
            "key": key,
            "state": _RUNNING,
            "owner": trial_number,
            "worker": worker_id(),
            "result": None,
            "updated": time.time(),
        }
        with self._engine.begin() as conn:
            if insert_ignore(conn, self._t, [row_values]) == 1:
                return ClaimResult("owned", owner=trial_number), None
            row = conn.execute(
                self._sa.select(
                    self._t.c.state, self._t.c.owner, self._t.c.worker, self._t.c.result
                ).where(self._row(key))
            ).first()
        if row is None:
            return ClaimResult("busy"), None  # released in between; claim() tries again
        if row.state == _DONE:
            return ClaimResult("done", json.loads(row.result or "{}"), row.owner), None
        if row.owner == trial_number:
            return ClaimResult("owned", owner=trial_number), None
        return ClaimResult("busy", owner=row.owner), row.worker

    @retried
    def _take_over(self, key: str, dead_owner: int, trial_number: int) -> bool:
        """Move a running claim from ``dead_owner`` to ``trial_number`` if it is still held."""
        with self._engine.begin() as conn:
            res = conn.execute(
                self._sa.update(self._t)
                .where(self._row(key), self._t.c.state == _RUNNING, self._t.c.owner == dead_owner)
                .values(owner=trial_number, worker=worker_id(), updated=time.time())
            )
            return res.rowcount == 1


def _dumps(key: str, result: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(result), sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"result for key {key!r} must be JSON-serialisable: {exc}") from None
