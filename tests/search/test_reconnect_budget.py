"""One outage is one retry budget (search/reconnect.py): a worker whose database stays down
gives up once, after ``db_retry_s``, not once per operation on its way out.

The operations fail with SQLAlchemy's own ``OperationalError`` (what a lost PostgreSQL
connection raises through psycopg2); tests/search/test_pg_restart.py stops a real server.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy.exc

from quantsearch.errors import StorageError
from quantsearch.search.reconnect import Reconnect


def _down() -> None:
    raise sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed"))


def _timed(r: Reconnect) -> float:
    t0 = time.monotonic()
    with pytest.raises(StorageError, match=r"could not reconnect within 0\.3 s"):
        r.call(_down)
    return time.monotonic() - t0


def test_calls_after_a_give_up_share_the_outage_until_one_succeeds() -> None:
    r = Reconnect(0.3, first_pause=0.01)
    assert _timed(r) >= 0.3  # the first call waits the whole limit
    # the next operations of the same outage (a ticket given back, a trial failed) try once
    # and give up: the limit is spent
    assert max(_timed(r) for _ in range(3)) < 0.3
    assert r.call(lambda: "back") == "back"  # the database answers: the outage is over
    assert _timed(r) >= 0.3  # a new outage has a whole budget again


def test_a_blip_shorter_than_the_limit_is_ridden_out() -> None:
    r = Reconnect(5.0, first_pause=0.01)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            _down()
        return "ok"

    assert r.call(flaky) == "ok" and len(calls) == 3
    calls.clear()
    assert r.call(flaky) == "ok"  # the blip's start was forgotten when it ended
