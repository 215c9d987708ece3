"""A PostgreSQL restart in the middle of a search: the workers ride it out, nothing is lost.

The server is the suite's own (``QUANTSEARCH_PG_URL``, started by ``.ci/postgres.sh``), restarted
with ``pg_ctl restart`` while three ``quantsearch worker`` processes run trials on it, and left
running. The search must then finish (or a rerun finish) with exactly the budget completed, no
config evaluated twice, and no traceback from any worker.

One outage is one ``search.db_retry_s`` for the whole worker process: its storage, budget,
claims and liveness share it. The outage tests hold their workers in a forward pass by a file
(:data:`GATED_MODEL`), stop the server, and let go: the referee is the clock and the server. A
worker must give up in one line no sooner than the limit after the stop and within the limit
plus :data:`SLACK_S` of being let go (a budget for the storage and another for the coordinator
gave up after twice the limit: 4.2 s with 2 s), and a server back within the limit must cost
no trial.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from quantsearch.search.parallel import WORKER_ATTR
from quantsearch.search.workers import worker_env
from tests.search.test_worker_secrets import _children, _cmdline
from tests.search.test_workers import evaluated_hashes, finish, setup, trials, workers

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PG_DIR = Path(os.environ.get("QUANTSEARCH_PG_DIR", "/tmp/quantsearch-pg"))

DB_RETRY_S = 2.0
# Past the limit: the rest of the forward pass a worker was held in (0.15 s), one last
# connection attempt (refused at once), and a loaded machine's scheduling. The time is the
# error line's: the interpreter's exit after it (torch's teardown, 0.7-1.1 s here) is not a wait.
SLACK_S = 1.0
# search --workers K, once its last worker has exited: its watch's poll (0.5 s), its last read
# of the study (refused at once) and a loaded machine's scheduling; it waited its own 60 s
# before (the default, not db_retry_s). The workers' exits are not its wait: an interpreter's
# teardown after its line (torch's, in C) took 1.0-3.6 s at load 5-7, and a bound on the whole
# from the let-go (the limit + 3.5 s) failed 4 runs in 19 (5.66-5.97 s), the parent's line
# 0.05-0.53 s after its last worker's exit.
PARENT_SLACK_S = 1.5

# test_workers' model with two gates. While START exists, a trial's forward pass waits for it
# to go (not the passes of a worker's start-up, its fit check and trace: those are no trial's).
# While HOLD exists, any forward pass says so in a file of its own (held-PID) and waits for
# HOLD to go.
GATED_MODEL = """
import os
import sys
import time
from pathlib import Path
from torch import nn

HOLD = Path({hold!r})
START = Path({start!r})

def in_trial():
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_qualname.startswith("TrialObjective."):
            return True
        frame = frame.f_back
    return False

class Gated(nn.Module):
    op_kind = "identity"  # a graph leaf: the gate stays in the traced model

    def forward(self, x):
        while START.exists() and in_trial():
            time.sleep(0.01)
        if HOLD.exists():
            (HOLD.parent / f"held-{{os.getpid()}}").touch()
            while HOLD.exists():
                time.sleep(0.01)
        time.sleep(0.15)
        return x

def build():
    return nn.Sequential(nn.Linear(64, 10), Gated())
"""


def _pg_ctl() -> list[str] | None:
    """The command that runs pg_ctl on the suite's cluster (as ``postgres`` when root)."""
    data = PG_DIR / "data"
    if not (data / "postmaster.pid").is_file():
        return None
    bindir = Path(shutil.which("pg_ctl") or "").parent
    if not (bindir / "pg_ctl").is_file():
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
        if not found:
            return None
        bindir = found[-1].parent
    cmd = [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(PG_DIR / "server.log")]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


def restart_server(pg_ctl: list[str]) -> None:
    # pg_ctl restart reuses the server's options (port) and logs to -l: the server must not
    # inherit a pipe of ours, or capturing pg_ctl's output would wait for the server to exit.
    subprocess.run(
        [*pg_ctl, "-w", "-t", "60", "-m", "fast", "restart"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=90,
    )


def wait_for_workers(url: str, study: str, n: int, start: Path, timeout: float = 120) -> None:
    """Until each of ``n`` workers has made a trial, then let them go on (a restart then cuts
    live connections, not a worker's start-up, which refuses an unreachable database at once
    in one line).

    The workers were started with ``start`` there (:func:`_gated`): each one's first trial
    waits in its forward pass, or on a waiting one's claim of its config, until ``start``
    goes, so each of them makes a trial and the budget is not run before the last of them has
    loaded. Waiting for each to have run a trial instead, with none held, a worker that
    started late found the budget used up: the others had run all 12 trials in the 7 s it
    took to load, and it exited having run none (2 runs in 8 with two busy loops beside other
    suites, load 7); and once each had, most of the budget was run before the restart.
    """
    deadline = time.monotonic() + timeout
    try:
        while len(_marks(url, study)) < n:
            assert time.monotonic() < deadline, f"not every one of {n} workers made a trial"
            time.sleep(0.05)
    finally:
        start.unlink(missing_ok=True)


def _marks(url: str, study: str) -> set[str]:
    """The workers that made a trial of the study: their marks (host:pid:start)."""
    try:
        ts = trials(url, study)
    except Exception:  # the study does not exist yet
        ts = []
    return {str(t.user_attrs.get(WORKER_ATTR, "")).split("@")[-1] for t in ts} - {""}


def _cluster(pg_url: str) -> tuple[list[str], int]:
    """pg_ctl's command on the suite's cluster and its port, or a skip."""
    pg_ctl, port = _pg_ctl(), _running_port()
    if pg_ctl is None or port is None or make_url(pg_url).port != port:
        pytest.skip("needs the .ci/postgres.sh cluster (QUANTSEARCH_PG_URL) to stop it")
    return pg_ctl, port


def _stop(pg_ctl: list[str]) -> None:
    subprocess.run([*pg_ctl, "-w", "-m", "fast", "stop"], stdout=subprocess.DEVNULL, check=True)


def _start(pg_ctl: list[str], port: int) -> None:
    subprocess.run(  # on its own port again (start, unlike restart, does not reuse it)
        [*pg_ctl, "-w", "-t", "60", "-o", f"-p {port}", "start"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )


def _gated(
    tmp_path: Path, budget: int, retry_s: float | None = None
) -> tuple[Path, Path, Path, Path]:
    """test_workers' setup with :data:`GATED_MODEL` and ``db_retry_s`` (unless None); its gates'
    files, HOLD and START (there: the workers are to be started)."""
    cfg, ckpt = setup(tmp_path, "random", budget)
    hold, start = tmp_path / "hold", tmp_path / "start"
    (tmp_path / "slow.py").write_text(GATED_MODEL.format(hold=str(hold), start=str(start)))
    if retry_s is not None:
        cfg.write_text(cfg.read_text().replace("[search]\n", f"[search]\ndb_retry_s = {retry_s}\n"))
    start.touch()
    return cfg, ckpt, hold, start


def _hold(
    procs: list[subprocess.Popen[bytes]],
    hold: Path,
    url: str,
    study: str,
    pids: list[int],
    timeout: float = 60,
) -> None:
    """Until each worker (``pids``) waits in a forward pass (it says so in its held-PID file)
    or waits for one that does, ``procs`` (the workers, or the ``search --workers`` that
    started them) running.

    Not each in a forward pass: a second worker may wait on the held one's claim of its config
    (another trial of the same config waits for its result), polling the database. Not the
    first held alone either: a worker between two database operations, in a trial's work
    other than a forward pass, met the outage only when that work ended, 4.3 s after the
    let-go at load 5-8 (its line 8.2 s after it, 2 runs in 30). Once this returns, while HOLD
    exists none runs a trial to its end, and every worker not in a forward pass polls the
    database.
    """
    hold.touch()
    deadline = time.monotonic() + timeout
    while not _held(hold.parent, url, study, pids):
        for p in procs:
            assert p.poll() is None, p.communicate()[1].decode()
        assert time.monotonic() < deadline, "not every worker reached a forward pass or a wait"
        time.sleep(0.01)


def _held(folder: Path, url: str, study: str, pids: list[int]) -> bool:
    """Whether each of ``pids`` waits in a forward pass, or runs a trial of the config a
    waiting one's trial evaluates (so it waits for that one's result)."""
    held = {pid for pid in pids if (folder / f"held-{pid}").exists()}
    if not held or held == set(pids):
        return bool(held)
    running: dict[int, list[dict[str, Any]]] = {}  # pid -> its running trials' parameters
    for t in trials(url, study):
        label = str(t.user_attrs.get(WORKER_ATTR, ""))
        if t.state.name == "RUNNING" and label.startswith(f"{t.number}@"):  # its own mark
            running.setdefault(int(label.rsplit(":", 2)[1]), []).append(t.params)
    waited_for = [params for pid in held for params in running.get(pid, [])]
    return all(
        pid in held or any(params in waited_for for params in running.get(pid, [])) for pid in pids
    )


def _wait_for_an_attempt(port: int, timeout: float = 60) -> None:
    """With the server stopped: until a worker tries to connect to its port. A listener of
    ours takes the connection and hangs up, which the worker meets as a lost connection."""
    with socket.create_server(("127.0.0.1", port)) as listener:  # SO_REUSEADDR, as PostgreSQL
        listener.settimeout(timeout)
        conn, _ = listener.accept()
        conn.close()


def _timed_lines(p: subprocess.Popen[bytes]) -> tuple[threading.Thread, list[tuple[float, str]]]:
    """A thread that reads the worker's standard error as it comes: (when, line) each."""
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert p.stderr is not None
        for raw in p.stderr:
            lines.append((time.monotonic(), raw.decode().rstrip("\n")))

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread, lines


class _Workers:
    """The workers of ``search --workers`` (the parent's children), timed by a thread: when each
    one's ``error:`` line reaches its log (``worker-I.log``, read from its size now on) and
    when each one exits (its process a zombie or gone), until :meth:`stop`."""

    def __init__(self, parent: subprocess.Popen[bytes], runs: Path) -> None:
        self.pids = _worker_pids(parent)
        self.logs = {log: log.stat().st_size for log in runs.glob("*/worker-*.log")}
        self.said: dict[str, float] = {}  # log name -> when its error line was there
        self.ended: dict[int, float] = {}  # pid -> when it was seen to have exited
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            now = time.monotonic()
            for log, start in self.logs.items():
                if log.name not in self.said:
                    with log.open("rb") as fh:
                        fh.seek(start)
                        if b"error:" in fh.read():
                            self.said[log.name] = now
            for pid in self.pids:
                if pid not in self.ended and _exited(pid):
                    self.ended[pid] = now
            time.sleep(0.01)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)


def _worker_pids(parent: subprocess.Popen[bytes]) -> list[int]:
    return [pid for pid in _children(parent.pid) if " worker " in f"{_cmdline(pid)} "]


def _exited(pid: int) -> bool:
    try:  # the state follows the command's name, which ends at the last ")"
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def test_workers_survive_a_postgres_restart(pg_url: str, tmp_path: Path) -> None:
    pg_ctl = _pg_ctl()
    if pg_ctl is None or make_url(pg_url).port != _running_port():
        pytest.skip("needs the .ci/postgres.sh cluster (QUANTSEARCH_PG_URL) to restart it")
    budget = 12
    cfg, ckpt, _, start = _gated(tmp_path, budget)
    study = f"restart-{os.getpid()}"
    procs = workers(cfg, ckpt, pg_url, study, 3, tmp_path)
    wait_for_workers(pg_url, study, 3, start)
    restart_server(pg_ctl)
    codes = finish(procs, timeout=180)
    errs = [p.stderr.read().decode() if p.stderr else "" for p in procs]
    for err in errs:
        assert "Traceback" not in err, err
    assert codes == [0, 0, 0], errs  # they waited for the database and went on
    ts = trials(pg_url, study)
    states = Counter(t.state.name for t in ts)
    assert states["COMPLETE"] == budget, states
    hashes = evaluated_hashes(ts)
    assert len(hashes) == len(set(hashes))  # no config evaluated twice


def test_a_worker_gives_up_in_one_line_when_the_database_stays_down(
    pg_url: str, tmp_path: Path
) -> None:
    """With the server down for longer than ``search.db_retry_s``, each worker gives up in one
    line, once (within the limit plus :data:`SLACK_S`), and a rerun once it is back meets the
    budget exactly."""
    pg_ctl, port = _cluster(pg_url)
    budget = 16  # the whole space
    cfg, ckpt, hold, start = _gated(tmp_path, budget, DB_RETRY_S)
    study = f"down-{os.getpid()}"
    procs = workers(cfg, ckpt, pg_url, study, 2, tmp_path)
    wait_for_workers(pg_url, study, 2, start)
    # the gate, not slow trials, keeps them from finishing before the stop
    _hold(procs, hold, pg_url, study, [p.pid for p in procs])
    readers = [_timed_lines(p) for p in procs]
    try:
        stopping = time.monotonic()  # a worker polling the database meets the shutdown's start
        _stop(pg_ctl)
        hold.unlink()  # let go: their next database operations meet the outage
        let_go = time.monotonic()
        codes = finish(procs, timeout=60)
    finally:
        _start(pg_ctl, port)
    for thread, _ in readers:
        thread.join(timeout=10)
    said = [[(t, text) for t, text in lines if text.strip()] for _, lines in readers]
    assert codes == [2, 2], said
    for lines in said:
        assert len(lines) == 1 and lines[0][1].startswith("error: --storage"), said
        assert f"within {DB_RETRY_S:g} s" in lines[0][1] and "resume" in lines[0][1]
        gave_up = lines[0][0]
        assert gave_up - stopping >= DB_RETRY_S  # it rode the outage out for the whole limit
        assert gave_up - let_go <= DB_RETRY_S + SLACK_S, f"{gave_up - let_go:.2f} s"  # once
    rerun = workers(cfg, ckpt, pg_url, study, 1, tmp_path)
    assert finish(rerun, timeout=120) == [0], rerun[0].stderr.read().decode()  # type: ignore[union-attr]
    ts = trials(pg_url, study)
    assert Counter(t.state.name for t in ts)["COMPLETE"] == budget
    hashes = evaluated_hashes(ts)
    assert len(hashes) == len(set(hashes))


def test_search_workers_ends_in_one_line_within_the_limit_when_the_database_stays_down(
    pg_url: str, tmp_path: Path
) -> None:
    """``search --workers 2``, whose parent watches the study while its workers run: when the
    server stays down each worker gives up within the limit (plus :data:`SLACK_S`), and the
    parent, once its last worker has exited, within :data:`PARENT_SLACK_S`, in one line
    saying what its workers said (it said the database could not be reached). The
    URL is the config's ``search.storage``: the workers read it there too, and their line names
    that key (they were handed it as ``--storage`` and said so)."""
    pg_ctl, port = _cluster(pg_url)
    cfg, ckpt, hold, start = _gated(tmp_path, 16, DB_RETRY_S)
    cfg.write_text(cfg.read_text().replace("[search]\n", f"[search]\nstorage = {pg_url!r}\n"))
    study = f"parent-{os.getpid()}"
    cmd = [
        sys.executable, "-m", "quantsearch", "search", "--workers", "2", "--config", str(cfg),
        "--load", str(ckpt), "--study", study, "--run-dir", str(tmp_path / "runs"),
    ]  # fmt: skip
    parent = subprocess.Popen(
        cmd, cwd=tmp_path, env=worker_env(None), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    wait_for_workers(pg_url, study, 2, start)
    _hold([parent], hold, pg_url, study, _worker_pids(parent))
    thread, lines = _timed_lines(parent)
    timed = _Workers(parent, tmp_path / "runs")
    assert len(timed.pids) == len(timed.logs) == 2, (timed.pids, timed.logs)
    try:
        _stop(pg_ctl)
        hold.unlink()
        let_go = time.monotonic()
        (code,) = finish([parent], timeout=120)
    finally:
        _start(pg_ctl, port)
        timed.stop()
    thread.join(timeout=10)
    said = [(t, text) for t, text in lines if text.strip()]
    assert code == 2 and len(said) == 1, said
    assert said[0][1].startswith("error: 2 of 2 workers failed"), said
    assert f"could not reconnect within {DB_RETRY_S:g} s" in said[0][1], said
    assert "said: error: search.storage:" in said[0][1], said
    # each worker gave up in its line within the limit, as one started alone does (above) ...
    assert len(timed.said) == 2, timed.said
    for name, gave_up in timed.said.items():
        assert gave_up - let_go <= DB_RETRY_S + SLACK_S, f"{name}: {gave_up - let_go:.2f} s"
    # ... and the parent said so once its last worker had exited, with no wait of its own
    assert len(timed.ended) == 2, timed.ended
    last = max(timed.ended.values())
    assert said[0][0] - last <= PARENT_SLACK_S, f"{said[0][0] - last:.2f} s after the last exit"


def test_a_database_back_within_the_limit_costs_no_trial(pg_url: str, tmp_path: Path) -> None:
    """Stopped while the worker waits in a forward pass, started again once the worker has met
    the outage: it rides it out and finishes its own budget."""
    pg_ctl, port = _cluster(pg_url)
    budget = 6
    retry_s = 5.0  # what the outage may take on a loaded machine; the worker waits it only
    cfg, ckpt, hold, start = _gated(tmp_path, budget, retry_s)  # if the server stays down
    study = f"blip-{os.getpid()}"
    procs = workers(cfg, ckpt, pg_url, study, 1, tmp_path)
    wait_for_workers(pg_url, study, 1, start)
    _hold(procs, hold, pg_url, study, [procs[0].pid])
    try:
        stopping = time.monotonic()
        _stop(pg_ctl)
        hold.unlink()
        _wait_for_an_attempt(port)
    finally:
        _start(pg_ctl, port)
    assert time.monotonic() - stopping < retry_s  # else this test proves nothing
    assert finish(procs, timeout=120) == [0], procs[0].stderr.read().decode()  # type: ignore[union-attr]
    assert "Traceback" not in procs[0].stderr.read().decode()  # type: ignore[union-attr]
    ts = trials(pg_url, study)
    assert Counter(t.state.name for t in ts)["COMPLETE"] == budget
    hashes = evaluated_hashes(ts)
    assert len(hashes) == len(set(hashes))


def _running_port() -> int | None:
    try:
        return int((PG_DIR / "data" / "postmaster.pid").read_text().splitlines()[3])
    except (OSError, IndexError, ValueError):
        return None


def test_a_trial_created_twice_by_a_lost_reply_is_not_retried_into_the_budget(
    pg_url: str, tmp_path: Path
) -> None:
    """A restart can cut the reply to a trial's creation after it committed: the storage's
    retry creates the trial the worker runs, and the first one stays RUNNING with no mark, no
    parameter and no heartbeat (seen with ``pg_ctl restart -m immediate`` under a search: 151
    completed trials of a budget of 150). Here that orphan is made directly in the worker's
    study while it runs, started long enough ago to count as dead. It is failed and not
    retried: the study completes exactly its budget."""
    import datetime

    import optuna
    from optuna.trial import FrozenTrial, TrialState

    from quantsearch.search.parallel.liveness import UNMARKED_GRACE

    budget = 12
    cfg, ckpt, _, start = _gated(tmp_path, budget)
    study = f"lost-reply-{os.getpid()}"
    procs = workers(cfg, ckpt, pg_url, study, 1, tmp_path)
    wait_for_workers(pg_url, study, 1, start)
    storage = optuna.storages.RDBStorage(pg_url)
    started = datetime.datetime.now() - datetime.timedelta(seconds=2 * UNMARKED_GRACE)
    orphan = FrozenTrial(
        number=-1, state=TrialState.RUNNING, value=None, datetime_start=started,
        datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
        intermediate_values={}, trial_id=-1,
    )  # fmt: skip
    trial_id = storage.create_new_trial(storage.get_study_id_from_name(study), orphan)
    number = storage.get_trial_number_from_id(trial_id)
    codes = finish(procs, timeout=180)
    assert codes == [0], procs[0].stderr.read().decode()  # type: ignore[union-attr]
    ts = trials(pg_url, study)
    states = Counter(t.state.name for t in ts)
    assert states["COMPLETE"] == budget, states
    assert next(t for t in ts if t.number == number).state == TrialState.FAIL
    assert not [t for t in ts if t.system_attrs.get("failed_trial") == number]
