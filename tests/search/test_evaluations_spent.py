"""The evaluation budget's count (``TrialObjective.evaluations_spent``) reads each finished trial
once and stays right as trials come: this process's, another worker's (a second storage on the
same journal file, which sees the first's writes only through the file, as another process
does), a resumed study's, finished late or never.

Referee: :func:`~quantsearch.search.trial.evaluations_charged` over every finished trial read
afresh by Optuna's own journal reader (a new storage object each time).
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.graph import trace
from quantsearch.search import optuna_compat
from quantsearch.search.cache import EvaluationCache
from quantsearch.search.config import parse_search_config
from quantsearch.search.prepare import prepare_search
from quantsearch.search.trial import TrialInfo, evaluations_charged
from quantsearch.search.trial_objective import TrialObjective
from tests.search.spaces import LAB_SPACE

OBJ = {"accuracy": {"direction": "maximize"}}


def _storage(path: Path) -> JournalStorage:
    return JournalStorage(JournalFileBackend(str(path)))


def _referee(path: Path, distinct: bool) -> int:
    study = optuna.load_study(study_name="s", storage=_storage(path))
    finished = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    infos = [TrialInfo.from_trial(t) for t in study.get_trials(states=finished)]
    return evaluations_charged(infos, distinct=distinct)


def _add(study: optuna.Study, info: TrialInfo, state: TrialState = TrialState.COMPLETE) -> None:
    """A finished trial, stored as the batched path stores it (which, as Optuna's ask and tell,
    refreshes the study's view of its storage: the budget is checked after that)."""
    values = [0.5] if state == TrialState.COMPLETE else None
    trial = optuna.trial.create_trial(state=state, values=values, user_attrs=info.to_user_attrs())
    optuna_compat.add_trial(study, trial)


@pytest.mark.parametrize("cache", [True, False])
def test_the_count_follows_every_worker_and_a_resume(
    tmp_path: Path, mlp: nn.Module, digits: DataSplits, cache: bool
) -> None:
    cfg = parse_search_config(
        {"space": LAB_SPACE, "objectives": OBJ, "n_evaluations": 50, "cache": cache}
    )
    space, evaluator = prepare_search(trace(mlp, digits.val.x[:8]), cfg, digits.val)
    path = tmp_path / "study.journal"
    ours = optuna.create_study(study_name="s", storage=_storage(path))
    other = optuna.load_study(study_name="s", storage=_storage(path))  # another worker
    objective = TrialObjective(evaluator, space, cfg, {}, EvaluationCache(), None)

    def check(study: optuna.Study) -> int:
        got = objective.evaluations_spent(study)
        assert got == _referee(path, distinct=cache)
        assert objective.evaluations_spent(study) == got  # asked again, nothing new: the same
        return got

    assert check(ours) == 0
    _add(ours, TrialInfo(0, "COMPLETE", config_hash="a"))
    _add(ours, TrialInfo(1, "COMPLETE", config_hash="a", cached=True))  # a repeat
    assert check(ours) == (1 if cache else 2)
    running = other.ask()  # the other worker's trial, finished later
    _add(other, TrialInfo(3, "COMPLETE", config_hash="b"))
    _add(other, TrialInfo(4, "COMPLETE", config_hash="c", prechecked=True, feasible=False))
    _add(other, TrialInfo(5, "FAIL", config_hash="d"), TrialState.FAIL)  # Ctrl-C: not charged
    _add(other, TrialInfo(6, "PRUNED", config_hash="e"), TrialState.PRUNED)
    _add(ours, TrialInfo(7, "COMPLETE", config_hash="a", cached=True))
    assert check(ours) == (3 if cache else 5)
    for k, v in TrialInfo(2, "COMPLETE", config_hash="b").to_user_attrs().items():
        running.set_user_attr(k, v)
    other.tell(running, 0.5)
    _add(ours, TrialInfo(8, "COMPLETE", config_hash="c"))  # once pre-checked, now evaluated
    assert check(ours) == (4 if cache else 7)
    # Resumed: a new objective (a new process) on the same study reads it all once.
    objective = TrialObjective(evaluator, space, cfg, {}, EvaluationCache(), None)
    resumed = optuna.load_study(study_name="s", storage=_storage(path))
    assert check(resumed) == (4 if cache else 7)
    _add(resumed, TrialInfo(9, "COMPLETE", config_hash="f"))
    assert check(resumed) == (5 if cache else 8)


def test_threads_checking_the_budget_together_count_each_trial_once(
    mlp: nn.Module, digits: DataSplits
) -> None:
    """n_jobs threads check the budget before each of their trials (``study._done``): the count
    they share must not take a new trial twice. Thread switches are forced every microsecond
    so that, without the count's lock, two threads met the same new trials in about one
    repeat in twenty (the defect a review found). Referee: ``evaluations_charged`` over the
    study's trials."""
    import sys
    import threading

    cfg = parse_search_config({"space": LAB_SPACE, "objectives": OBJ, "n_evaluations": 10_000})
    space, evaluator = prepare_search(trace(mlp, digits.val.x[:8]), cfg, digits.val)
    study = optuna.create_study()
    for n in range(300):
        _add(study, TrialInfo(n, "COMPLETE", config_hash=f"h{n}"))
    truth = evaluations_charged(
        [TrialInfo.from_trial(t) for t in study.get_trials()], distinct=True
    )
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(40):
            objective = TrialObjective(evaluator, space, cfg, {}, EvaluationCache(), None)
            got: list[int] = []
            threads = [
                threading.Thread(target=_spend, args=(objective, study, got)) for _ in range(4)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert got == [truth] * 4
            assert objective.evaluations_spent(study) == truth
    finally:
        sys.setswitchinterval(interval)


def _spend(objective: TrialObjective, study: optuna.Study, out: list[int]) -> None:
    out.append(objective.evaluations_spent(study))
