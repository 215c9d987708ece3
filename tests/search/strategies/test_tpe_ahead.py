"""TPE's next proposal computed ahead in a helper process is Optuna's, and the helper ends
with its search.

Referee: ``optuna.samplers.TPESampler(seed=...)``, driven in lockstep through ``ask`` against
``IncrementalTPESampler.propose_batch`` with the helper on (started after a dozen trials,
not :data:`~quantsearch.search.strategies.tpe_ahead.START_AT`, and waited for); real search processes for
``kill -9`` and Ctrl-C, the helper's descriptors and its exit read from ``/proc``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.graph import trace
from quantsearch.passes.transform.modules import quantizable_kinds
from quantsearch.search import optuna_compat
from quantsearch.search.space import SearchSpace, parse_space
from quantsearch.search.strategies import tpe_ahead
from quantsearch.search.strategies.tpe import IncrementalTPESampler
from tests.search.strategies.test_tpe_batch import (
    SPACE,
    _kill_search,
    _mirror,
    _stored,
    _tpe_until_killed,
)

pytestmark = pytest.mark.skipif(not tpe_ahead.available(), reason="the helper forks: Linux only")

ROOT = Path(__file__).parents[3]


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_proposals_computed_ahead_are_optunas(
    mlp: nn.Module, digits: DataSplits, direction: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """160 trials with ties, constraints met and violated, pruned and failed trials: every
    point equals the one Optuna's ``ask`` and suggestions give, most of them taken from the
    helper (both of its cases: the trial before below and not), the others (after a failed
    trial, which changes no history) computed by the sampler itself."""
    monkeypatch.setattr(tpe_ahead, "START_AT", 12)
    monkeypatch.setattr(tpe_ahead, "WAIT_S", 30.0)  # on a busy machine the helper is late
    space = SearchSpace(parse_space(SPACE), trace(mlp, digits.val.x[:8]), set(quantizable_kinds()))
    theirs = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=5))
    sampler = IncrementalTPESampler(seed=5, space=space)
    ours = optuna.create_study(direction=direction, sampler=sampler)
    rng = np.random.default_rng(5)
    below_taken = 0
    for n in range(160):
        trial = theirs.ask()
        suggested = {k.name: trial.suggest_categorical(k.name, k.labels) for k in space.knobs}
        hits = sampler._ahead.hits if sampler._ahead is not None else 0
        assert sampler.propose_batch(ours, 1) == [space.decode(suggested)], f"trial {n}"
        ahead = sampler._ahead
        if ahead is not None and ahead.hits > hits and sampler._history is not None:
            below_taken += sampler._history.n - 1 in ahead.last_below
        draw, value = rng.random(), float(np.round(rng.random(), 1))  # ties
        if draw < 0.15:
            optuna_compat.set_constraints(trial, [0.15 - draw, -1.0])
        elif draw < 0.3:
            optuna_compat.set_constraints(trial, [-draw, 0.0])
        if draw > 0.95:
            trial.report(value, step=int(draw * 100) % 3)
            theirs.tell(trial, state=TrialState.PRUNED)
        elif draw > 0.9:
            theirs.tell(trial, state=TrialState.FAIL)
        else:
            theirs.tell(trial, value)
        ours.add_trial(_mirror(theirs.trials[-1]))
    ahead = sampler._ahead
    assert ahead is not None and ahead.hits > 100 and ahead.misses > 0, ahead
    assert 0 < below_taken < ahead.hits  # both cases were used
    ahead.close()
    deadline = time.monotonic() + 30
    while not _ended(ahead.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ended(ahead.pid)  # it exits on the closed pipe


def test_a_helper_that_gets_no_cpu_never_stalls_the_search(
    mlp: nn.Module, digits: DataSplits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The helper stopped (SIGSTOP: a machine with no CPU for it): every proposal is
    still Optuna's, computed by the sampler itself, and none waits for the helper (one
    request in flight, written without blocking)."""
    monkeypatch.setattr(tpe_ahead, "START_AT", 12)
    space = SearchSpace(parse_space(SPACE), trace(mlp, digits.val.x[:8]), set(quantizable_kinds()))
    theirs = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=9))
    sampler = IncrementalTPESampler(seed=9, space=space)
    ours = optuna.create_study(sampler=sampler)
    stopped = None

    def stalled(*_: object) -> None:  # a blocked write is interrupted: a failure, not a hang
        raise AssertionError("a proposal waited for the stopped helper")

    before = signal.signal(signal.SIGALRM, stalled)
    signal.alarm(60)
    try:
        for n in range(120):
            trial = theirs.ask()
            suggested = {k.name: trial.suggest_categorical(k.name, k.labels) for k in space.knobs}
            assert sampler.propose_batch(ours, 1) == [space.decode(suggested)], f"trial {n}"
            if stopped is None and sampler._ahead is not None:
                stopped = sampler._ahead
                os.kill(stopped.pid, signal.SIGSTOP)
            theirs.tell(trial, float(n % 7))
            ours.add_trial(_mirror(theirs.trials[-1]))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)
    assert stopped is not None and sampler._ahead is stopped and stopped.hits == 0
    assert stopped.misses > 90
    os.kill(stopped.pid, signal.SIGCONT)
    stopped.close()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _ended(pid: int) -> bool:
    """Gone, or a zombie (exited, not yet reaped by whoever adopted it)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _search_with_helper(run_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A real TPE search process (``test_tpe_batch``'s, the helper from trial 12 on), in a
    session of its own (a terminal's Ctrl-C reaches its whole process group), and its helper."""
    code = (
        "import sys; from pathlib import Path; "
        "from quantsearch.search.strategies import tpe_ahead; tpe_ahead.START_AT = 12; "
        "from tests.search.strategies.test_tpe_ahead import _until_interrupted; "
        "_until_interrupted(Path(sys.argv[1]))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(run_dir)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    helpers: list[int] = []
    while not helpers and time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, proc.communicate()[1].decode()
        if int(line.split()[0]) > 30:
            helpers = _children(proc.pid)
    assert len(helpers) == 1, helpers
    return proc, helpers[0]


def _until_interrupted(run_dir: Path) -> None:
    try:
        _tpe_until_killed(run_dir)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)


@pytest.mark.slow  # two search processes: about 8 s
def test_the_helper_holds_no_file_of_the_search_and_ends_with_it(tmp_path: Path) -> None:
    """The helper keeps only its two pipe ends (the run directory's lock and journal are the
    search's: closed in it), ignores a Ctrl-C to the process group (the search answers it and
    exits as before, 130) and ends with its search; so it does after a ``kill -9`` of the
    search, and the search resumes in its run directory with every trial it kept."""
    proc, helper = _search_with_helper(tmp_path / "a")
    fds = sorted(int(fd.name) for fd in (Path("/proc") / str(helper) / "fd").iterdir())
    assert fds[:3] == [0, 1, 2] and len(fds) == 5, fds
    targets = [os.readlink(Path("/proc") / str(helper) / "fd" / str(fd)) for fd in fds[3:]]
    assert all(t.startswith("pipe:") for t in targets), targets
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and out.decode().endswith("interrupted\n"), err.decode()
    deadline = time.monotonic() + 30
    while not _ended(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ended(helper)

    proc, helper = _search_with_helper(tmp_path / "b")
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while not _ended(helper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ended(helper)
    kept = [row for row in _stored(tmp_path / "b") if row[1] == TrialState.COMPLETE]
    result = _kill_search(tmp_path / "b", "tpe", len(kept) + 5)
    assert len(result.trials) == len(kept) + 5
