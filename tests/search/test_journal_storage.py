"""journal_storage.Journal: a short trial written as one record, read back by Optuna unchanged.

Referees: Optuna's own, unmodified ``JournalFileBackend`` + ``JournalStorage`` reading the file,
and the same seeded study run on a journal that writes every record at once (Optuna's own
record-by-record protocol).
"""

from __future__ import annotations

import json
import sys
import textwrap
import threading
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import TrialState

from quantsearch.search import journal_storage
from quantsearch.search.journal import JournalBackend
from quantsearch.search.journal_record import CHAIN_KEY
from quantsearch.search.journal_repair import JournalRepaired
from quantsearch.search.journal_storage import Journal
from tests.kill import kill_after

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(trial: optuna.Trial) -> float:
    x = trial.suggest_int("x", 0, 9)
    c = trial.suggest_categorical("c", ["a", "b"])
    trial.set_user_attr("note", {"x": x, "c": c})
    trial.storage.set_trial_system_attr(trial._trial_id, "constraints", [float(x) - 5])
    if trial.number == 4:
        raise ValueError("four")  # a FAIL trial
    trial.report(float(x), step=1)
    if trial.number == 6:
        raise optuna.TrialPruned()
    return float(x) + (c == "b")


def _run(path: Path, group_commit_s: float, n: int = 12, n_jobs: int = 1) -> Journal:
    storage = Journal(JournalBackend(path, exclusive=True, group_commit_s=group_commit_s))
    study = optuna.create_study(
        storage=storage, study_name="s", sampler=optuna.samplers.RandomSampler(seed=3)
    )
    study.optimize(_objective, n_trials=n, catch=(ValueError,), n_jobs=n_jobs)
    storage.flush()
    return storage


def _optuna_load(path: Path) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path))))


def _ops(path: Path) -> list[int]:
    return [json.loads(line)["op_code"] for line in path.read_text().splitlines()]


def _view(t: optuna.trial.FrozenTrial) -> tuple[Any, ...]:
    return (
        t.number,
        t.state,
        t.values,
        t.params,
        t.distributions,
        t.user_attrs,
        t.system_attrs,
        t.intermediate_values,
        t.datetime_start is not None,
        t.datetime_complete is not None,
    )


def test_a_short_trial_is_one_record_and_reads_as_optunas_protocol_writes_it(
    tmp_path: Path,
) -> None:
    one, each = tmp_path / "one.journal", tmp_path / "each.journal"
    _run(one, group_commit_s=3600.0)
    _run(each, group_commit_s=0.0)  # Optuna's protocol: a record per operation
    create_trial = 4  # JournalOperation.CREATE_TRIAL
    assert _ops(one).count(create_trial) == 12
    assert len(_ops(one)) == 1 + 12  # the study, then one record a trial
    assert len(_ops(each)) > 5 * 12
    a, b = _optuna_load(one).trials, _optuna_load(each).trials
    assert [_view(t) for t in a] == [_view(t) for t in b]
    states = {t.state for t in a}
    assert states == {TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED}


def test_the_running_trial_is_seen_by_reads_while_pending(tmp_path: Path) -> None:
    storage = Journal(JournalBackend(tmp_path / "j", exclusive=True, group_commit_s=3600.0))
    study = optuna.create_study(storage=storage, study_name="s")
    seen: list[Any] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        seen.append([(t.number, t.params) for t in running])
        seen.append(
            storage.get_trial_id_from_study_id_trial_number(study._study_id, trial.number)
            == trial._trial_id
        )
        return x

    study.optimize(objective, n_trials=3)
    assert seen[0] == [(0, {"x": study.trials[0].params["x"]})]
    assert seen[1] is True and seen[5] is True
    assert [t.number for t in study.trials] == [0, 1, 2]


def test_a_long_trial_is_written_as_running_then_finished(tmp_path: Path) -> None:
    path = tmp_path / "j"
    storage = Journal(JournalBackend(path, exclusive=True, group_commit_s=0.05))
    study = optuna.create_study(storage=storage, study_name="s")
    during: list[list[TrialState]] = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        time.sleep(0.4)  # the watcher writes it, then group commit flushes it
        during.append([t.state for t in _optuna_load(path).trials])
        trial.set_user_attr("late", 1)  # after it was written: a record of its own
        return x

    study.optimize(objective, n_trials=1)
    storage.flush()
    assert during == [[TrialState.RUNNING]]
    (t,) = _optuna_load(path).trials
    assert t.state == TrialState.COMPLETE and t.user_attrs == {"late": 1}


def test_threads_get_consecutive_numbers_and_the_file_agrees(tmp_path: Path) -> None:
    path = tmp_path / "j"
    storage = _run(path, group_commit_s=3600.0, n=40, n_jobs=3)
    study = optuna.load_study(study_name="s", storage=storage)
    mine = sorted((t.number, t.state, t.params) for t in study.trials)
    theirs = sorted((t.number, t.state, t.params) for t in _optuna_load(path).trials)
    assert [n for n, _, _ in mine] == list(range(40))
    assert mine == theirs


@pytest.mark.parametrize("group_commit_s", [0.0, 3600.0])
@pytest.mark.parametrize("n_objectives", [1, 2])
def test_trials_created_together_are_the_records_optuna_writes_one_by_one(
    tmp_path: Path, group_commit_s: float, n_objectives: int
) -> None:
    # Referee: Optuna's own JournalStorage.create_new_trial, one template after another, on
    # Optuna's own file backend; then Optuna's reader on both files.
    dists = {
        "x": optuna.distributions.IntDistribution(0, 9),
        "c": optuna.distributions.CategoricalDistribution(("a", "b")),
    }
    start = datetime.now()
    templates = [
        optuna.trial.create_trial(
            state=state,
            values=[float(i), 2.0 * i][:n_objectives] if state == TrialState.COMPLETE else None,
            params={"x": i, "c": "ab"[i % 2]},
            distributions=dists,  # one dict for all, as a batch shares it
            user_attrs={"i": i, "note": {"k": [1, 2]}},
            system_attrs={"constraints": [float(i) - 3]},
            intermediate_values={1: float(i)} if state == TrialState.PRUNED else None,
        )
        for i, state in enumerate([TrialState.COMPLETE] * 4 + [TrialState.FAIL, TrialState.PRUNED])
    ]
    for i, t in enumerate(templates):
        t.datetime_start, t.datetime_complete = start, start + timedelta(milliseconds=i)
    directions = ["minimize"] * n_objectives
    ours_path, theirs_path = tmp_path / "ours", tmp_path / "theirs"
    ours = Journal(JournalBackend(ours_path, exclusive=True, group_commit_s=group_commit_s))
    theirs = JournalStorage(JournalFileBackend(str(theirs_path)))
    ids = []
    for storage in (ours, theirs):
        sid = storage.create_new_study([StudyDirection.MINIMIZE] * n_objectives, "s")
        storage.create_new_trial(sid, templates[0])  # a trial before: ids do not start at 0
        if storage is ours:
            ids = ours.create_new_trials(sid, templates[1:])
        else:
            for t in templates[1:]:
                storage.create_new_trial(sid, t)
    ours.flush()
    assert ids == [1, 2, 3, 4, 5]
    assert [t.number for t in ours.get_all_trials(0)] == list(range(6))
    assert ours.get_trial(3).params == {"x": 3, "c": "b"}

    def records(path: Path) -> list[dict[str, Any]]:
        return [
            {k: v for k, v in json.loads(line).items() if k not in ("worker_id", CHAIN_KEY)}
            for line in path.read_text().splitlines()
        ]

    assert records(ours_path) == records(theirs_path)
    a = optuna.load_study(
        study_name="s", storage=JournalStorage(JournalFileBackend(str(ours_path)))
    )
    b = optuna.load_study(study_name="s", storage=theirs)
    assert [_view(t) for t in a.trials] == [_view(t) for t in b.trials]
    assert a.directions == b.directions == [StudyDirection.MINIMIZE] * len(directions)


@pytest.mark.parametrize("group_commit_s", [0.0, 3600.0])  # 0: Optuna's own check, the referee
def test_an_incompatible_distribution_is_refused_as_optuna_refuses_it(
    tmp_path: Path, group_commit_s: float
) -> None:
    path = tmp_path / "j"
    storage = Journal(JournalBackend(path, exclusive=True, group_commit_s=group_commit_s))
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda t: t.suggest_int("x", 0, 9), n_trials=1)
    trial = study.ask()
    with pytest.raises(ValueError, match="different distribution kind"):
        trial.suggest_float("x", 0.0, 1.0)
    study.tell(trial, state=TrialState.FAIL)


def test_no_watcher_thread_outlives_the_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(journal_storage, "_WATCH_IDLE_S", 0.3)
    storage = Journal(JournalBackend(tmp_path / "j", exclusive=True, group_commit_s=0.02))
    study = optuna.create_study(storage=storage, study_name="s")
    watchers: set[threading.Thread | None] = set()

    def objective(trial: optuna.Trial) -> float:
        watchers.add(storage._watcher)
        return trial.suggest_float("x", 0, 1)

    study.optimize(objective, n_trials=20)
    (watcher,) = watchers  # one for the whole search
    assert watcher is not None
    watcher.join(timeout=2)
    assert not watcher.is_alive() and storage._watcher is None


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time, optuna
    from pathlib import Path
    from quantsearch.search.journal import JournalBackend
    from quantsearch.search.journal_storage import Journal
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = Journal(JournalBackend(Path(sys.argv[1]), exclusive=True, group_commit_s=0.05))
    study = optuna.create_study(storage=storage, study_name="s", load_if_exists=True)
    def objective(trial):
        time.sleep(0.002)
        return trial.suggest_float("x", 0, 1)
    def done(study, trial):
        print(trial.number, time.monotonic(), flush=True)
    study.optimize(objective, n_trials=100000, callbacks=[done])
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("after_s", [0.55, 0.8])
def test_kill_9_loses_no_trial_older_than_the_flush_interval(
    tmp_path: Path, after_s: float
) -> None:
    """As tests/search/test_journal.py's test of the same name, with trials as one record."""
    path = tmp_path / "study.journal"
    old = kill_after([sys.executable, "-c", _KILLED_WRITER, str(path)], after_s)
    assert old, "no trial finished long enough before the kill: nothing was tested"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JournalRepaired)
        storage = Journal(JournalBackend(path, exclusive=True, group_commit_s=0.05))
    study = optuna.load_study(study_name="s", storage=storage)
    complete = {t.number for t in study.trials if t.state == TrialState.COMPLETE}
    assert old <= complete
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)  # and it resumes
    storage.flush()
    assert len(_optuna_load(path).trials) == len(study.trials)
