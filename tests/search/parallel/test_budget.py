"""The shared trial budget: tickets across real processes, and what a study's trials hold."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from quantsearch.search.parallel import Coordinator, open_coordinator
from quantsearch.search.parallel.budget import LocalBudget, consumed_tickets
from quantsearch.search.trial import TrialInfo
from tests.search.parallel.procs import N_PROCS, forkserver, run_all

CTX = forkserver(__name__)


def _open(url: str | None, run_dir: Path, study: str) -> Coordinator:
    return open_coordinator(url, run_dir, study, workers=N_PROCS)


def _ticket_worker(
    index: int, barrier: Any, queue: Any, url: str | None, run_dir: Path, study: str, budget: int
) -> None:
    try:
        coord = _open(url, run_dir, study)
        barrier.wait(timeout=30)
        got: list[int] = []
        for _ in range(budget + 5):  # bounded: more tries than tickets exist
            ticket = coord.budget.take(budget)
            if ticket is None:
                break
            got.append(ticket)
        coord.close()
        queue.put(got)
    except BaseException as exc:
        queue.put(exc)
        raise


def test_tickets_never_exceed_the_budget(backend: tuple[str | None, Path]) -> None:
    url, run_dir = backend
    study = f"budget-{uuid.uuid4().hex[:8]}"
    out = run_all(CTX, _ticket_worker, url, run_dir, study, 40)
    assert not [o for o in out if isinstance(o, BaseException)], out
    tickets = sorted(t for got in out for t in got)
    assert tickets == list(range(1, 41))
    with _open(url, run_dir, study) as coord:
        assert coord.budget.used() == 40
        assert coord.budget.take(40) is None
        coord.budget.give_back()
        assert coord.budget.take(40) == 40
        assert not coord.budget.recount(39, 38)  # the count moved on: left alone
        assert coord.budget.recount(40, 38) and coord.budget.used() == 38


def test_local_budget() -> None:
    b = LocalBudget()
    b.start(3)
    assert b.take(4) == 4 and b.take(4) is None
    assert b.recount(4, 2) and b.take(4) == 3


def test_consumed_tickets_counts_a_retry_chain_once() -> None:
    def t(number: int, state: str, error: str | None = None) -> TrialInfo:
        return TrialInfo(number=number, state=state, error=error)

    trials = [
        t(0, "COMPLETE"),
        t(1, "FAIL"),  # died, retried by 2, which died, retried by 3
        t(2, "FAIL"),
        t(3, "COMPLETE"),
        t(4, "FAIL", error="ValueError: bad config"),  # its config failed: holds its ticket
        t(5, "WAITING"),  # enqueued, not started
        t(6, "RUNNING"),  # in progress
        t(7, "FAIL"),  # died, not retried (max_retry): its ticket is free again
    ]
    assert consumed_tickets(trials, retried={1, 2}) == 4
