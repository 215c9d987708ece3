"""Claims on config keys, across real processes, on the journal's sidecar and on PostgreSQL."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from quantsearch.search.parallel import Coordinator, open_coordinator
from quantsearch.search.parallel.claims import Claims
from quantsearch.search.parallel.liveness import worker_id
from quantsearch.search.parallel.tables import open_engine
from tests.search.parallel.procs import N_PROCS, forkserver, run_all

CTX = forkserver(__name__)


def _open(url: str | None, run_dir: Path, study: str) -> Coordinator:
    return open_coordinator(url, run_dir, study, workers=N_PROCS)


def _claim_worker(
    index: int, barrier: Any, queue: Any, url: str | None, run_dir: Path, study: str
) -> None:
    owned: list[str] = []
    seen: dict[str, Any] = {}
    try:
        coord = _open(url, run_dir, study)
        claims = coord.claims
        assert claims is not None
        keys = [f"cfg-{k}" for k in range(30)]
        random.Random(index).shuffle(keys)
        barrier.wait(timeout=30)
        for j, key in enumerate(keys):
            trial = index * 1000 + j  # distinct trial numbers across processes
            got = claims.claim(key, trial)
            if got.busy:
                got = claims.wait(key, trial, timeout=20, poll=0.005)
            if got.owned:
                owned.append(key)
                time.sleep(0.002)  # an evaluation: lets the others find the key busy and wait
                claims.complete(key, trial, {"by": trial})
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
    out = run_all(CTX, _claim_worker, url, run_dir, study)
    assert not [o for o in out if isinstance(o, BaseException)], out
    owners = [key for owned, _ in out for key in owned]
    assert sorted(owners) == sorted(f"cfg-{k}" for k in range(30))  # each once, none missing
    # Every process saw the owner's result for every key.
    first = out[0][1]
    assert all(seen == first for _, seen in out)
    with _open(url, run_dir, study) as coord:
        assert coord.claims is not None
        assert {k: v["by"] for k, v in coord.claims.results().items()} == first


# -- one process --------------------------------------------------------------------------------


@pytest.fixture(params=["sidecar", "sqlite", "postgres"])
def claims(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Claims]:
    study = f"unit-{uuid.uuid4().hex[:8]}"
    if request.param == "sidecar":
        engine = open_engine(f"sqlite:///{tmp_path / 'coordination.db'}", sidecar=True)
    elif request.param == "sqlite":
        engine = open_engine(f"sqlite:///{tmp_path / 'study.db'}")
    else:
        engine = open_engine(request.getfixturevalue("pg_url"))
    yield Claims(engine, study, owner_alive=lambda owner, _worker: owner != 0)  # 0 is dead
    engine.dispose()


def test_claim_release_complete(claims: Claims) -> None:
    assert claims.claim("a", 1).owned
    assert claims.claim("a", 1).owned  # the owner asking again
    busy = claims.claim("a", 2)
    assert busy.busy and busy.owner == 1
    claims.release("a", 2)  # not the owner: no effect
    assert claims.claim("a", 2).busy
    claims.release("a", 1)
    assert claims.claim("a", 2).owned  # released: claimable again
    claims.complete("a", 2, {"acc": 0.5, "bits": [8, 4]})
    done = claims.claim("a", 3)
    assert done.done and done.result == {"acc": 0.5, "bits": [8, 4]} and done.owner == 2
    claims.complete("a", 3, {"acc": 0.0})  # the first result stays
    assert claims.results() == {"a": {"acc": 0.5, "bits": [8, 4]}}
    with pytest.raises(ValueError, match="key 'z'"):
        claims.complete("z", 1, {"f": object()})


def test_claim_of_a_dead_owner_passes_on(claims: Claims) -> None:
    assert claims.claim("b", 0).owned  # trial 0 is dead (see the fixture's owner_alive)
    assert claims.claim("b", 5).owned
    assert claims.claim("b", 6).busy  # trial 5 is alive


def test_wait_returns_when_done_or_times_out(claims: Claims) -> None:
    assert claims.claim("c", 1).owned
    assert claims.wait("c", 2, timeout=0.05, poll=0.01).busy
    claims.complete("c", 1, {"v": 1})
    assert claims.wait("c", 2, timeout=5).result == {"v": 1}


def test_a_claim_records_its_process(tmp_path: Path) -> None:
    """What liveness reads: the worker column names this process."""
    with open_coordinator(None, tmp_path, "s", workers=2) as coord:
        assert coord.claims is not None and coord.claims.claim("k", 1).owned
        assert coord.claims._try_claim("k", 2)[1] == worker_id()
