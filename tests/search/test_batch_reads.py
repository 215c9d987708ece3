"""The trial loop's reads of the study: the list of trials kept between two reads
(``optuna_compat.journal_trials``) is the one Optuna's replay lists; the batched path's check
for a waiting trial answers as a filter of every trial does.

Referees: Optuna's own, unmodified ``JournalStorage`` on a ``JournalFileBackend`` reading the
same file, after every step of a study with running, waiting, failed, pruned and finished
trials, trials stored whole, and a second writer's trials; ``Study.get_trials`` by state.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
from optuna.distributions import IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState, create_trial

from quantsearch.search import optuna_compat
from quantsearch.search.batch import Batches
from quantsearch.search.journal import JournalBackend
from quantsearch.search.journal_storage import Journal

optuna.logging.set_verbosity(optuna.logging.WARNING)

STATES: list[tuple[TrialState, ...] | None] = [
    None,
    (TrialState.COMPLETE,),
    (TrialState.RUNNING, TrialState.WAITING),
]


def _seen(trials: list[FrozenTrial]) -> list[tuple[Any, ...]]:
    return [(t.number, t.state, t.params, t.values, t.user_attrs) for t in trials]


def test_the_kept_list_is_optunas_after_every_step(tmp_path: Path) -> None:
    path = tmp_path / "study.journal"
    ours = Journal(JournalBackend(path, exclusive=False))  # a record a change, no pending trial
    study = optuna.create_study(storage=ours, study_name="s")
    other = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path))))
    sid = study._study_id
    checks = [0]

    def check() -> None:
        referee = JournalStorage(JournalFileBackend(str(path)))  # reads the file afresh
        rid = referee.get_study_id_from_name("s")
        for states in STATES:
            want = referee.get_all_trials(rid, deepcopy=False, states=states)
            got = ours.get_all_trials(sid, deepcopy=False, states=states)
            assert _seen(got) == _seen(want), (checks[0], states)
        checks[0] += 1

    check()
    running = study.ask()
    running.suggest_int("x", 0, 9)
    check()
    for n in range(6):
        t = study.ask()
        t.suggest_int("x", 0, 9)
        t.set_user_attr("n", n)
        check()
        if n == 2:
            study.tell(t, state=TrialState.FAIL)
        elif n == 3:
            t.report(1.0, step=0)
            study.tell(t, state=TrialState.PRUNED)
        else:
            study.tell(t, float(n))
        check()
    theirs = other.ask()  # another writer's trial, running, then finished
    theirs.suggest_int("x", 0, 9)
    check()
    study.enqueue_trial({"x": 3})  # waiting
    check()
    other.tell(theirs, 5.0)
    dist = {"x": IntDistribution(0, 9)}
    optuna_compat.add_trials(
        study, [create_trial(params={"x": i}, distributions=dist, value=i) for i in range(3)]
    )
    check()
    running.set_user_attr("late", True)  # the first running trial still changes
    study.tell(running, 9.0)
    check()
    waiting = study.ask()  # the enqueued trial runs
    assert waiting.suggest_int("x", 0, 9) == 3
    check()
    study.tell(waiting, 1.0)
    check()
    assert len(study.trials) == 12 and checks[0] == 20


def test_ready_sees_a_waiting_trial_wherever_it_is() -> None:
    """``Batches.ready`` looks past the leading finished trials only: after every step it
    answers as a filter of all trials by state does (the referee), with waiting trials
    enqueued behind a running one and after finished ones, and taken by the next ask."""
    study = optuna.create_study()
    state = SimpleNamespace(_finished=0)  # the one attribute ready() keeps

    def check() -> None:
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        optuna_compat.sync_trials(study)  # enqueue_trial leaves the study's cached list as was
        assert Batches.ready(state, study) == (not waiting)  # type: ignore[arg-type]

    running = study.ask()
    check()
    for n in range(5):
        study.tell(study.ask(), float(n))
        check()
        if n in (1, 3):
            study.enqueue_trial({"x": n})
            check()
    study.tell(running, 0.0)  # the first unfinished trial finishes: all 6 are
    check()
    assert state._finished == 6
    study.enqueue_trial({"x": 9})
    check()
    while study.get_trials(states=(TrialState.WAITING,)):
        trial = study.ask()
        check()
        study.tell(trial, 1.0)
        check()
    assert Batches.ready(state, study) and state._finished == len(study.trials) == 7  # type: ignore[arg-type]


def test_trials_stored_whole_are_replayed_from_memory_as_optuna_reads_them(
    tmp_path: Path,
) -> None:
    """With group commit (the only writer) the batched path's records are replayed from memory
    with their distributions parsed once (``optuna_compat._replay_created``): every trial,
    every attribute, equals what Optuna's own ``JournalStorage`` reads from the file, and the
    replay has counted every record. Trials asked and told (the pending trial) come between
    the batches, and a trial's user attribute written record by record just before one."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    path = tmp_path / "study.journal"
    ours = Journal(JournalBackend(path, exclusive=True, group_commit_s=3600.0))
    study = optuna.create_study(storage=ours, study_name="s")
    dists = {
        "fmt": CategoricalDistribution(["fixed(8,4)", "fixed(4,2)", 3, 0.5, None, True]),
        "w": IntDistribution(2, 16, step=2),
        "lr": FloatDistribution(1e-4, 1.0, log=True),
    }
    choices: list[Any] = ["fixed(4,2)", 3, 0.5, None, True]
    stored = []
    for batch in range(3):
        t = study.ask()
        t.suggest_int("w", 2, 16, step=2)
        study.tell(t, float(batch))
        long = study.ask()  # runs over the batch: its records are written one by one
        long.set_user_attr("batch", batch)
        templates = [
            create_trial(
                params={"fmt": choices[(batch + i) % 5], "w": 2 * (i + 1), "lr": 0.01 * (i + 1)},
                distributions=dists,
                values=[0.5 * i],
                user_attrs={"qs": {"config": {"a": [1, 2]}, "n": i}},
                system_attrs=optuna_compat.constraints_attrs([0.1 * i - 0.2]),
            )
            for i in range(4)
        ]
        for template in templates:  # one dict for all, as the batched path's trials share
            template.distributions = dists
        stored += optuna_compat.add_trials(study, templates)
        study.tell(long, 1.0)
    ours.flush()
    referee = JournalStorage(JournalFileBackend(str(path)))
    want = referee.get_all_trials(referee.get_study_id_from_name("s"), deepcopy=False)
    got = ours.get_all_trials(study._study_id, deepcopy=False)
    assert len(got) == 18 and got == want  # FrozenTrial equality: every attribute
    assert [t._trial_id for t in got] == [t._trial_id for t in want]
    assert [t.datetime_start for t in got] == [t.datetime_start for t in want]
    lines = len(path.read_text().splitlines())
    assert ours._replay_result.log_number_read == lines
    # replayed from memory: one batch's trials share the distributions parsed once
    assert stored[0].distributions["fmt"] is stored[3].distributions["fmt"]
    assert stored[0].distributions is not stored[3].distributions
