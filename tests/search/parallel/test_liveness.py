"""Dead-worker detection: process marks, unmarked orphans, and what happens to a dead trial."""

from __future__ import annotations

import datetime
import socket
import subprocess
import sys

import optuna
import pytest
from optuna.trial import TrialState

from quantsearch.search.parallel.budget import LocalBudget
from quantsearch.search.parallel.liveness import (
    UNMARKED_GRACE,
    WORKER_ATTR,
    Liveness,
    mark,
    process_dead,
    worker_id,
)

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture(scope="module")
def dead_worker() -> str:
    """The worker id of a process on this host that has ended."""
    proc = subprocess.run(
        [sys.executable, "-c", "from quantsearch.search.parallel.liveness import worker_id; "
         "print(worker_id())"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return proc.stdout.strip()


def test_process_dead(dead_worker: str) -> None:
    assert process_dead(dead_worker)
    assert not process_dead(worker_id())  # this process
    host, pid, start = worker_id().rsplit(":", 2)
    assert process_dead(f"{host}:{pid}:{int(start or 0) + 1}")  # the pid, reused by another
    assert not process_dead(f"another-{socket.gethostname()}:1:1")  # only heartbeats can tell
    assert not process_dead(None) and not process_dead("garbage")


def _running(study: optuna.Study, label: str | None) -> optuna.trial.Trial:
    trial = study.ask()
    trial.suggest_int("x", 0, 9)
    if label is not None:
        trial.set_user_attr(WORKER_ATTR, label)
    return trial


def test_reap_fails_dead_trials_once_and_retries_them(dead_worker: str) -> None:
    study = optuna.create_study()
    budget = LocalBudget()
    mine = study.ask()
    mark(mine)  # alive: this process
    dead = _running(study, f"1@{dead_worker}")
    inherited = _running(study, f"0@{dead_worker}")  # a retry's copy of its origin's mark
    budget.start(3)
    watch = Liveness(budget)
    watch.attach(study, alone=False)
    assert [t.state for t in study.get_trials()] == [
        TrialState.RUNNING,
        TrialState.FAIL,
        TrialState.RUNNING,  # no mark of its own yet, but young: its worker may still mark it
        TrialState.WAITING,  # the retry of trial 1
    ]
    retry = study.get_trials()[3]
    assert retry.params == study.get_trials()[1].params
    assert retry.system_attrs["failed_trial"] == dead.number
    assert budget.used() == 2  # the dead trial's ticket waits for its retry
    assert watch.reap(force=True) == []  # once only
    assert watch.owner_alive(mine.number, worker_id())
    assert not watch.owner_alive(dead.number, dead_worker)
    assert inherited.number == 2


def test_a_trial_left_unmarked_counts_as_dead(monkeypatch: pytest.MonkeyPatch) -> None:
    study = optuna.create_study()
    _running(study, None)
    watch = Liveness(LocalBudget())
    watch.attach(study, alone=False)
    assert study.get_trials()[0].state == TrialState.RUNNING
    later = datetime.datetime.now() + datetime.timedelta(seconds=UNMARKED_GRACE + 1)
    monkeypatch.setattr(
        "quantsearch.search.parallel.liveness.datetime",
        type("Clock", (), {"now": staticmethod(lambda: later)}),
    )
    assert watch.reap(force=True) == [0]


def test_alone_every_running_trial_is_an_orphan() -> None:
    study = optuna.create_study()
    mark(study.ask())  # marked by this very process: a killed run's, since we hold the run dir
    budget = LocalBudget()
    budget.start(1)
    Liveness(budget).attach(study, alone=True)
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL, TrialState.WAITING]
    assert budget.used() == 0


def test_a_forked_child_has_its_own_worker_id() -> None:
    """worker_id is kept per process: a child forked after the parent asked computes its own."""
    import multiprocessing
    import os

    parent = worker_id()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        child, child_pid = pool.apply(_worker_id_and_pid)
    assert child != parent and child.rsplit(":", 2)[1] == str(child_pid)
    assert parent.rsplit(":", 2)[1] == str(os.getpid())


def _worker_id_and_pid() -> tuple[str, int]:
    import os

    return worker_id(), os.getpid()
