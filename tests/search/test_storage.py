"""open_storage: the journal default, RDB URLs, refusals, and resuming after ``kill -9``."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import sqlalchemy as sa
import torch
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState
from torch import nn

from quantsearch.data import load_dataset
from quantsearch.errors import ConfigError
from quantsearch.search import search
from quantsearch.search.batch import Batches
from quantsearch.search.parallel import open_coordinator
from quantsearch.search.storage import (
    DEFAULT_HEARTBEAT_INTERVAL,
    JOURNAL_FILE,
    RetryStaleTrial,
    is_sqlite_url,
    open_storage,
    redact_url,
)
from tests.search.spaces import LAB_SPACE

optuna.logging.set_verbosity(optuna.logging.ERROR)
# Children fork from a clean server process: fast (modules preloaded once), and safe even after
# other tests started threads (torch) in this process, which a plain fork would copy mid-state.
CTX = mp.get_context("forkserver")
CTX.set_forkserver_preload([__name__])


def test_default_is_a_journal_file_in_the_run_dir(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "a"
    storage = open_storage(None, run_dir)
    assert isinstance(storage, JournalStorage)
    optuna.create_study(storage=storage, study_name="s").optimize(lambda t: 1.0, n_trials=2)
    assert (run_dir / JOURNAL_FILE).stat().st_size > 0
    reopened = optuna.load_study(study_name="s", storage=open_storage(None, run_dir))
    assert len(reopened.trials) == 2


def test_rdb_urls_get_heartbeats(tmp_path: Path, pg_url: str) -> None:
    for url in (f"sqlite:///{tmp_path / 'study.db'}", pg_url):
        storage = open_storage(url, tmp_path)
        assert isinstance(storage, RDBStorage)
        assert storage.get_heartbeat_interval() == DEFAULT_HEARTBEAT_INTERVAL
        assert isinstance(storage.get_heartbeat_stale_trial_callback(), RetryStaleTrial)
        storage.engine.dispose()
    storage = open_storage(pg_url, tmp_path, workers=8, heartbeat_interval=2, grace_period=7)
    assert isinstance(storage, RDBStorage)
    assert (storage.get_heartbeat_interval(), storage.grace_period) == (2, 7)
    storage.engine.dispose()


def test_sqlite_with_several_workers_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.raises(ConfigError, match=r"^--storage: got SQLite .* for 2 workers") as err:
        open_storage(url, tmp_path, workers=2)
    message = str(err.value)
    assert "\n" not in message and "postgresql" in message and "journal" in message
    assert not (tmp_path / "study.db").exists()  # refused before touching anything


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("not a url", r"^--storage: got 'not a url' .*allowed: an Optuna RDB URL"),
        ("nosuchdb://x/y", r"^--storage: got 'nosuchdb://x/y' .*allowed: an Optuna RDB URL"),
        ("postgresql+psycopg2://bob:secret@127.0.0.1:1/db", r"^--storage: got .*\*\*\*.*allowed"),
    ],
)
def test_bad_urls_are_one_line_config_errors(url: str, match: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        open_storage(url, tmp_path)
    assert "\n" not in str(err.value) and "secret" not in str(err.value)


def test_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--workers: got 0, allowed: an integer >= 1$"):
        open_storage(None, tmp_path, workers=0)
    with pytest.raises(
        ConfigError, match=r"heartbeat_interval: got .*, allowed: a positive integer of seconds"
    ):
        open_storage(f"sqlite:///{tmp_path / 's.db'}", tmp_path, heartbeat_interval=0)


def test_url_helpers() -> None:
    assert is_sqlite_url("sqlite:///a.db") and is_sqlite_url("sqlite+pysqlite:///:memory:")
    assert not is_sqlite_url("postgresql://h/db") and not is_sqlite_url(None)
    assert redact_url("postgresql+psycopg2://u:pw@h:1/d") == "postgresql+psycopg2://u:***@h:1/d"


def test_retry_stops_after_max_retry() -> None:
    retry = RetryStaleTrial(max_retry=2)
    fresh = FrozenTrial(
        number=5,
        state=TrialState.FAIL,
        value=None,
        datetime_start=None,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values={},
        trial_id=5,
    )
    assert retry.will_retry(fresh)
    fresh.system_attrs = {"failed_trial": 1, "retry_history": [1]}
    assert retry.will_retry(fresh)
    fresh.system_attrs = {"failed_trial": 1, "retry_history": [1, 3]}
    assert not retry.will_retry(fresh)
    assert RetryStaleTrial(max_retry=None).will_retry(fresh)


def _open_fresh(url: str, run_dir: Path, barrier: Any, queue: Any) -> None:
    try:
        barrier.wait(timeout=30)
        storage = open_storage(url, run_dir, workers=4)
        coord = open_coordinator(url, run_dir, "fresh", workers=4)
        optuna.create_study(storage=storage, study_name="fresh", load_if_exists=True)
        coord.close()
        queue.put("ok")
    except BaseException as exc:
        queue.put(repr(exc))


def test_workers_starting_together_on_a_fresh_database(pg_url: str, tmp_path: Path) -> None:
    # A schema of its own stands for a fresh database: no Optuna or quantsearch tables yet.
    schema = f"fresh_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = f"{pg_url}?options=-csearch_path%3D{schema}"
    barrier, queue = CTX.Barrier(4), CTX.Queue()
    procs = [
        CTX.Process(target=_open_fresh, args=(url, tmp_path, barrier, queue)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    out = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()
    assert out == ["ok"] * 4  # without the setup lock, three fail on a duplicate pg_type key


# -- resume after kill -9 -----------------------------------------------------------------------

HANG_AT = 8  # forward passes: the baseline's, then one per trial; one of the trials hangs
_READY: Any = None  # set in the child: the event it sets when it hangs


class Hang(nn.Module):
    """Passes its input on; in the child, hangs in the middle of the sixth trial."""

    op_kind = "identity"  # modules that declare an op kind are graph leaves: the hang stays
    calls = 0  # a class attribute: quantized copies of the model count together

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        Hang.calls += 1
        if Hang.calls == HANG_AT and _READY is not None:
            _READY.set()
            signal.pause()  # killed here, mid-trial
        return x


def _resume_search(url: str | None, run_dir: Path, n_trials: int) -> Any:
    """The production search (``quantsearch.search.search``): brute force, one trial per point."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 10), Hang()).eval()
    return search(
        model, load_dataset("digits").val, space=LAB_SPACE, strategy="brute_force",
        objectives={"accuracy": {"direction": "maximize"}}, n_trials=n_trials, run_dir=run_dir,
        storage=url, study_name="resume",
    )  # fmt: skip


def _search_until_killed(url: str | None, run_dir: Path, ready: Any) -> None:
    global _READY
    _READY = ready
    # One trial at a time, so that the killed one is RUNNING in the study: the orphan's retry
    # is what this test follows. The batched path (one process on the journal) records no
    # trial of the batch in flight; tests/search/test_batch.py kills it.
    Batches.usable = staticmethod(lambda *a: False)  # type: ignore[assignment,method-assign]
    _resume_search(url, run_dir, 100)


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_resume_after_kill_keeps_completed_trials(kind: str, tmp_path: Path) -> None:
    url = None if kind == "journal" else f"sqlite:///{tmp_path / 'study.db'}"
    ready = CTX.Event()
    proc = CTX.Process(target=_search_until_killed, args=(url, tmp_path, ready))
    proc.start()
    assert ready.wait(timeout=60), f"search did not start (exit code {proc.exitcode})"
    # Group commit (the journal, one process): what finished more than its interval (50 ms)
    # before the kill is on disk; the contract says nothing of the last interval.
    time.sleep(0.3)
    os.kill(proc.pid or 0, signal.SIGKILL)
    proc.join(timeout=10)

    coord = open_coordinator(url, tmp_path, "resume", workers=1)
    storage = open_storage(url, tmp_path, stale_trial_callback=coord.stale_trial_callback)
    study = optuna.load_study(study_name="resume", storage=storage)
    before = study.get_trials()
    k = len(before) - 1  # 5, unless the baseline's metrics take more forward passes than two
    assert k >= 4
    assert [t.state for t in before] == [TrialState.COMPLETE] * k + [TrialState.RUNNING]
    coord.attach(study)
    # Journal: this process holds the run directory alone, so the RUNNING trial is an orphan.
    # SQLite: its mark names a process of this host that has ended (no need to wait for the
    # heartbeats' grace period).
    after = study.get_trials()
    assert [t.state for t in after] == [TrialState.COMPLETE] * k + [
        TrialState.FAIL,
        TrialState.WAITING,
    ]
    assert [(t.number, t.params, t.value) for t in after[:k]] == [
        (t.number, t.params, t.value) for t in before[:k]
    ]
    assert after[k + 1].params == before[k].params  # the killed trial, to be retried
    assert coord.budget.used() == k  # the retry takes the killed trial's ticket
    coord.close()
    # Continue to a budget of k + 3: the retry first, then two new trials; nothing re-run.
    result = _resume_search(url, tmp_path, k + 3)
    assert [t.state for t in result.trials].count("COMPLETE") == k + 3
    assert len(result.trials) == k + 4  # k + the killed one + its retry + 2
    assert result.trials[k + 1].params == before[k].params
    assert result.n_evaluations == k + 3  # none twice
