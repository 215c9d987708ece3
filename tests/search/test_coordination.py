"""Coordination across real processes, on the journal's SQLite sidecar and on real PostgreSQL."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from quantsearch.errors import ConfigError
from quantsearch.search.coordination import (
    WORKER_ATTR,
    Coordinator,
    LocalCoordinator,
    SqlCoordinator,
    consumed_tickets,
    open_coordinator,
)
from quantsearch.search.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.ERROR)

# Children fork from a clean server process: fast (modules preloaded once), and safe even after
# other tests started threads (torch) in this process, which a plain fork would copy mid-state.
CTX = mp.get_context("forkserver")
CTX.set_forkserver_preload([__name__])
N_PROCS = 4


@pytest.fixture(params=["sidecar", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str | None, Path]]:
    """(storage URL, run dir): the journal default with several workers, or PostgreSQL."""
    if request.param == "postgres":
        yield request.getfixturevalue("pg_url"), tmp_path
    else:
        yield None, tmp_path


def _open(url: str | None, run_dir: Path, study: str, **kw: Any) -> Coordinator:
    return open_coordinator(url, run_dir, study, workers=N_PROCS, **kw)


def _run_all(target: Callable[..., None], *args: Any) -> list[Any]:
    """Run ``target(index, barrier, queue, *args)`` in N_PROCS processes; what they queued."""
    barrier, queue = CTX.Barrier(N_PROCS), CTX.Queue()
    procs = [CTX.Process(target=target, args=(i, barrier, queue, *args)) for i in range(N_PROCS)]
    for p in procs:
        p.start()
    out = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0, f"worker exited with {p.exitcode}"
    return out


# -- races --------------------------------------------------------------------------------------


def _claim_worker(
    index: int, barrier: Any, queue: Any, url: str | None, run_dir: Path, study: str
) -> None:
    owned: list[str] = []
    seen: dict[str, Any] = {}
    try:
        coord = _open(url, run_dir, study)
        keys = [f"cfg-{k}" for k in range(30)]
        random.Random(index).shuffle(keys)
        barrier.wait(timeout=30)
        for j, key in enumerate(keys):
            trial = index * 1000 + j  # distinct trial numbers across processes
            got = coord.claim(key, trial)
            if got.busy:
                got = coord.wait(key, trial, timeout=20, poll=0.005)
            if got.owned:
                owned.append(key)
                time.sleep(0.002)  # an evaluation: lets the others find the key busy and wait
                coord.complete(key, trial, {"by": trial})
                seen[key] = trial
            else:
                assert got.done and got.result is not None, got
                seen[key] = got.result["by"]
        coord.close()
        queue.put((owned, seen))
    except BaseException as exc:  # the parent reports it
        queue.put(exc)
        raise


def test_each_key_has_exactly_one_owner(backend: tuple[str | None, Path]) -> None:
    url, run_dir = backend
    study = f"race-{uuid.uuid4().hex[:8]}"
    out = _run_all(_claim_worker, url, run_dir, study)
    assert not [o for o in out if isinstance(o, BaseException)], out
    owners = [key for owned, _ in out for key in owned]
    assert sorted(owners) == sorted(f"cfg-{k}" for k in range(30))  # each once, none missing
    # Every process saw the owner's result for every key.
    first = out[0][1]
    assert all(seen == first for _, seen in out)
    with _open(url, run_dir, study) as coord:
        assert {k: v["by"] for k, v in coord.results().items()} == first


def _ticket_worker(
    index: int, barrier: Any, queue: Any, url: str | None, run_dir: Path, study: str, budget: int
) -> None:
    try:
        coord = _open(url, run_dir, study)
        barrier.wait(timeout=30)
        got: list[int] = []
        for _ in range(budget + 5):  # bounded: more tries than tickets exist
            ticket = coord.take_ticket(budget)
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
    out = _run_all(_ticket_worker, url, run_dir, study, 40)
    assert not [o for o in out if isinstance(o, BaseException)], out
    tickets = sorted(t for got in out for t in got)
    assert tickets == list(range(1, 41))
    with _open(url, run_dir, study) as coord:
        assert coord.tickets_used() == 40
        assert coord.take_ticket(40) is None
        coord.return_ticket()
        assert coord.take_ticket(40) == 40


# -- claims, one process ------------------------------------------------------------------------


@pytest.fixture(params=["local", "sidecar", "sqlite", "postgres"])
def coord(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Coordinator]:
    study = f"unit-{uuid.uuid4().hex[:8]}"
    dead = {0}
    alive: Callable[[int], bool] = lambda n: n not in dead  # noqa: E731
    c: Coordinator
    if request.param == "local":
        c = LocalCoordinator(is_alive=alive)
    elif request.param == "sidecar":
        c = SqlCoordinator(f"sqlite:///{tmp_path / 'coordination.db'}", study, sidecar=True)
        c._is_alive = alive
    elif request.param == "sqlite":
        c = SqlCoordinator(f"sqlite:///{tmp_path / 'study.db'}", study, is_alive=alive)
    else:
        c = SqlCoordinator(request.getfixturevalue("pg_url"), study, is_alive=alive)
    yield c
    c.close()


def test_claim_release_complete(coord: Coordinator) -> None:
    assert coord.claim("a", 1).owned
    assert coord.claim("a", 1).owned  # the owner asking again
    busy = coord.claim("a", 2)
    assert busy.busy and busy.owner == 1
    coord.release("a", 2)  # not the owner: no effect
    assert coord.claim("a", 2).busy
    coord.release("a", 1)
    assert coord.claim("a", 2).owned  # released: claimable again
    coord.complete("a", 2, {"acc": 0.5, "bits": [8, 4]})
    done = coord.claim("a", 3)
    assert done.done and done.result == {"acc": 0.5, "bits": [8, 4]} and done.owner == 2
    coord.complete("a", 3, {"acc": 0.0})  # the first result stays
    assert coord.results() == {"a": {"acc": 0.5, "bits": [8, 4]}}


def test_claim_of_a_dead_owner_passes_on(coord: Coordinator) -> None:
    assert coord.claim("b", 0).owned  # trial 0 is dead (see the fixture's is_alive)
    assert coord.claim("b", 5).owned
    assert coord.claim("b", 6).busy  # trial 5 is alive


def test_wait_returns_when_done_or_times_out(coord: Coordinator) -> None:
    assert coord.claim("c", 1).owned
    assert coord.wait("c", 2, timeout=0.05, poll=0.01).busy
    coord.complete("c", 1, {"v": 1})
    assert coord.wait("c", 2, timeout=5).result == {"v": 1}


def test_seed_and_results_round_trip(coord: Coordinator) -> None:
    coord.seed({"x": {"acc": 1.0}, "y": {"acc": 0.25}})
    coord.seed({"x": {"acc": -1.0}})  # known results are kept
    assert coord.results() == {"x": {"acc": 1.0}, "y": {"acc": 0.25}}
    assert coord.claim("y", 9).result == {"acc": 0.25}
    with pytest.raises(ValueError, match="key 'z'"):
        coord.complete("z", 1, {"f": object()})


def test_local_coordinator_rebuilds_from_results() -> None:
    c = LocalCoordinator({"k": {"acc": 0.9}}, tickets_used=3)
    assert c.claim("k", 7).result == {"acc": 0.9}
    assert c.take_ticket(4) == 4 and c.take_ticket(4) is None


# -- open_coordinator ---------------------------------------------------------------------------


def test_sqlite_url_with_several_workers_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(ConfigError, match=r"^--storage: SQLite .* not safe for 3 workers") as err:
        open_coordinator(url, tmp_path, "s", workers=3)
    assert "\n" not in str(err.value) and "postgresql" in str(err.value)
    open_coordinator(url, tmp_path, "s", workers=1).close()


def test_run_dir_lock(tmp_path: Path) -> None:
    one = open_coordinator(None, tmp_path, "s", workers=1)
    assert isinstance(one, LocalCoordinator)
    with pytest.raises(ConfigError, match=r"--workers: run directory .* in use"):
        open_coordinator(None, tmp_path, "s", workers=1)
    with pytest.raises(ConfigError, match=r"--workers: run directory .* in use"):
        open_coordinator(None, tmp_path, "s", workers=2)
    one.close()
    a, b = (open_coordinator(None, tmp_path, "s", workers=2) for _ in range(2))  # shared
    assert isinstance(a, SqlCoordinator) and (tmp_path / "coordination.db").exists()
    with pytest.raises(ConfigError, match="in use"):
        open_coordinator(None, tmp_path, "s", workers=1)
    a.close()
    b.close()
    open_coordinator(None, tmp_path, "s", workers=1).close()
    assert not (tmp_path / "coordination.db").exists()  # its ticket count would be stale


def test_unreachable_database_names_storage() -> None:
    url = "postgresql+psycopg2://bob:secret@127.0.0.1:1/nodb"
    with pytest.raises(ConfigError, match=r"^--storage: cannot open") as err:
        open_coordinator(url, Path("unused"), "s")
    assert "secret" not in str(err.value) and "\n" not in str(err.value)


# -- tickets and retries --------------------------------------------------------------------


def test_consumed_tickets_counts_a_retry_chain_once() -> None:
    study = optuna.create_study()
    dist: dict[str, optuna.distributions.BaseDistribution] = {
        "x": optuna.distributions.CategoricalDistribution([1, 2])
    }

    def add(state: TrialState, history: list[int] | None = None) -> None:
        attrs = {"failed_trial": history[0], "retry_history": history} if history else {}
        study.add_trial(
            optuna.create_trial(
                state=state,
                params={"x": 1},
                distributions=dist,
                system_attrs=attrs,
                value=1.0 if state == TrialState.COMPLETE else None,
            )
        )

    add(TrialState.COMPLETE)  # 0
    add(TrialState.FAIL)  # 1: died, retried by 2, which died, retried by 3
    add(TrialState.FAIL, [1])  # 2
    add(TrialState.COMPLETE, [1, 2])  # 3
    add(TrialState.FAIL)  # 4: failed in its objective, not retried: holds its ticket
    add(TrialState.WAITING)  # 5: enqueued, not started
    add(TrialState.RUNNING)  # 6: in progress
    assert consumed_tickets(study.get_trials()) == 4
    # The search's own rule for finished trials (here: only COMPLETE ones use up the budget).
    assert consumed_tickets(study.get_trials(), lambda t: t.state == TrialState.COMPLETE) == 3


def _die_mid_trial(url: str | None, run_dir: Path, study_name: str, ready: Any, kw: Any) -> None:
    coord = _open(url, run_dir, study_name)
    storage = open_storage(
        url, run_dir, workers=N_PROCS, stale_trial_callback=coord.stale_trial_callback, **kw
    )
    study = optuna.create_study(storage=storage, study_name=study_name, load_if_exists=True)
    coord.attach(study, storage)
    assert coord.take_ticket(10) == 1
    trial = study.ask()
    trial.suggest_categorical("bits", [4, 8])
    with coord.running(trial):
        assert coord.claim("cfg", trial.number).owned
        ready.set()
        signal.pause()  # killed here


def test_killed_worker_trial_is_failed_retried_and_keeps_its_ticket(
    backend: tuple[str | None, Path],
) -> None:
    url, run_dir = backend
    name = f"kill-{uuid.uuid4().hex[:8]}"
    kw = {"heartbeat_interval": 1, "grace_period": 2} if url else {}
    ready = CTX.Event()
    proc = CTX.Process(target=_die_mid_trial, args=(url, run_dir, name, ready, kw))
    proc.start()
    assert ready.wait(timeout=30), f"worker did not start its trial (exit code {proc.exitcode})"
    os.kill(proc.pid or 0, signal.SIGKILL)
    proc.join(timeout=10)

    coord = _open(url, run_dir, name)
    storage = open_storage(
        url, run_dir, workers=N_PROCS, stale_trial_callback=coord.stale_trial_callback, **kw
    )
    study = optuna.create_study(storage=storage, study_name=name, load_if_exists=True)
    coord.attach(study, storage)
    # The dead trial's claim passes on at once: its process is gone (same host).
    assert coord.claim("cfg", 99).owned
    coord.release("cfg", 99)
    if url:  # heartbeats: failed once the grace period has passed since the last beat
        reaped: list[int] = []
        for _ in range(100):  # bounded: 10 s
            reaped = coord.reap(force=True)
            if reaped:
                break
            time.sleep(0.1)
        assert reaped == [0]
    # The journal has no heartbeats: attach() found the trial's process gone and failed it.
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert coord.tickets_used() == 0  # handed to the waiting retry

    # A worker attaching later does not retry it again.
    other = _open(url, run_dir, name)
    other.attach(optuna.load_study(study_name=name, storage=storage), storage)
    assert len(study.get_trials()) == 2
    other.close()

    assert coord.take_ticket(10) == 1
    retry = study.ask()
    assert retry.number == 1 and retry.params == trials[0].params
    assert study.get_trials()[1].system_attrs["failed_trial"] == 0
    with coord.running(retry):
        assert coord.claim("cfg", retry.number).owned
        coord.complete("cfg", retry.number, {"acc": 0.75})
    if not url:
        assert retry.user_attrs[WORKER_ATTR].startswith("1@")  # its own mark, not its origin's
    study.tell(retry, 0.75)
    assert coord.tickets_used() == 1 == consumed_tickets(study.get_trials())
    coord.close()


# -- the whole loop -----------------------------------------------------------------------------


def _search_worker(
    index: int, barrier: Any, queue: Any, url: str | None, run_dir: Path, name: str, budget: int
) -> None:
    """The search loop as the module docstring has it, on a 16-point space."""
    try:
        coord = _open(url, run_dir, name)
        storage = open_storage(
            url, run_dir, workers=N_PROCS, stale_trial_callback=coord.stale_trial_callback
        )
        barrier.wait(timeout=30)
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            load_if_exists=True,
            sampler=optuna.samplers.RandomSampler(seed=index),
        )
        coord.attach(study, storage)
        evaluated: list[str] = []
        for _ in range(budget + 1):  # bounded; the tickets stop it
            if coord.take_ticket(budget) is None:
                break
            coord.reap()
            trial = study.ask()
            key = f"{trial.suggest_int('w', 0, 3)}-{trial.suggest_int('a', 0, 3)}"
            with coord.running(trial):
                got = coord.claim(key, trial.number)
                if got.busy:
                    got = coord.wait(key, trial.number, timeout=20, poll=0.005)
                if got.owned:
                    evaluated.append(key)
                    result = {"value": float(len(evaluated))}
                    coord.complete(key, trial.number, result)
                else:
                    assert got.result is not None
                    result = got.result
            study.tell(trial, result["value"])
        coord.close()
        queue.put(evaluated)
    except BaseException as exc:
        queue.put(exc)
        raise


def test_workers_share_the_budget_and_the_cache(backend: tuple[str | None, Path]) -> None:
    url, run_dir = backend
    name = f"loop-{uuid.uuid4().hex[:8]}"
    out = _run_all(_search_worker, url, run_dir, name, 24)
    assert not [o for o in out if isinstance(o, BaseException)], out
    evaluated = [k for keys in out for k in keys]
    assert len(evaluated) == len(set(evaluated)) <= 16  # no config evaluated twice
    storage = open_storage(url, run_dir, workers=N_PROCS)
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 24  # the budget, not 4 x 24
