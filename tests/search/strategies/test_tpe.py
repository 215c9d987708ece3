"""IncrementalTPESampler proposes what Optuna's TPESampler proposes, trial for trial.

Referee: ``optuna.samplers.TPESampler(seed=...)`` itself, driven in lockstep with ours: two
studies, the same seed, the same asks and tells (values with ties, constraints, pruned and
failed trials, trials left running, other workers' trials), and every proposal compared.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import Trial, TrialState
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.search import optuna_compat, search
from quantsearch.search.strategies import STRATEGIES, StrategyContext
from quantsearch.search.strategies.tpe import IncrementalTPESampler

KNOBS = [f"layer{i}.weight" for i in range(8)]
CATEGORICAL = {k: CategoricalDistribution([f"fixed{w}" for w in range(8)]) for k in KNOBS}
ORDINAL = {k: IntDistribution(0, 7) for k in KNOBS}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _suggest(trial: Trial, space: dict[str, BaseDistribution]) -> dict[str, Any]:
    return {name: trial._suggest(name, d) for name, d in space.items()}


def _finish(study: optuna.Study, trial: Trial, draw: float, value: float) -> None:
    """Tell ``trial``: constraints on some, and some pruned (after a report) or failed."""
    if draw < 0.15:
        optuna_compat.set_constraints(trial, [0.15 - draw, -1.0])  # violated: infeasible
    elif draw < 0.3:
        optuna_compat.set_constraints(trial, [-draw, 0.0])  # satisfied
    if draw > 0.95:
        trial.report(value, step=int(draw * 100) % 3)
        study.tell(trial, state=TrialState.PRUNED)
    elif draw > 0.9:
        study.tell(trial, state=TrialState.FAIL)
    else:
        study.tell(trial, value)


def _lockstep(
    space: dict[str, BaseDistribution],
    n_trials: int,
    *,
    direction: str = "maximize",
    pending: int = 1,
    seed: int = 3,
) -> int:
    """Optuna's TPE and ours in lockstep: ``pending`` trials asked before any is told (the
    constant liar sees them running), told in a shuffled order. Returns the trials compared."""
    theirs = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    ours = optuna.create_study(direction=direction, sampler=IncrementalTPESampler(seed=seed))
    rng = np.random.default_rng(seed)
    compared = 0
    while compared < n_trials:
        if compared % 37 == 16:  # two enqueued trials: one waits while the other is proposed
            for study in (theirs, ours):
                for label in ("fixed0", "fixed7"):
                    study.enqueue_trial({KNOBS[0]: label if space is CATEGORICAL else 3})
        asked = []
        for _ in range(pending):
            a, b = theirs.ask(), ours.ask()
            pa, pb = _suggest(a, space), _suggest(b, space)
            assert pa == pb, f"trial {a.number}: Optuna {pa} != ours {pb}"
            asked.append((a, b))
            compared += 1
        for i in rng.permutation(len(asked)):
            # one decimal: many equal values, so ties are broken as Optuna breaks them
            draw, value = float(rng.random()), float(np.round(rng.random(), 1))
            _finish(theirs, asked[i][0], draw, value)
            _finish(ours, asked[i][1], draw, value)
    states = {t.state for t in ours.trials}
    assert {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL} <= states
    assert any(t.constraints and t.constraints["0"] > 0 for t in ours.trials)
    return compared


def test_categorical_knobs_get_optunas_proposals_for_300_trials() -> None:
    assert _lockstep(CATEGORICAL, 300) == 300


# 2, 5 and 12 categorical knobs of 2 to 10 choices
MIXED = [
    {f"k{i}.weight": CategoricalDistribution([f"c{j}" for j in range(c)]) for i, c in enumerate(cs)}
    for cs in ([2, 10], [3] * 5, [2, 3, 4, 5, 6, 7, 8, 9, 10, 2, 3, 4])
]


@pytest.mark.parametrize("space", MIXED, ids=["2 knobs", "5 knobs", "12 knobs"])
def test_spaces_of_2_to_12_knobs_get_optunas_proposals(space: dict[str, BaseDistribution]) -> None:
    assert _lockstep(space, 150, seed=11) == 150


@pytest.mark.slow  # Optuna's own TPE for 1,200 trials: ~15 s
def test_1200_trials_get_optunas_proposals() -> None:
    # past 1,000 finished trials, where the kernels' weights ramp over all but the last 25
    assert _lockstep(CATEGORICAL, 1200, direction="minimize", seed=13) == 1200


@pytest.mark.slow  # Optuna's own TPE on integer knobs: ~6 s for 300 trials
def test_ordinal_knobs_get_optunas_proposals_minimising() -> None:
    assert _lockstep(ORDINAL, 300, direction="minimize", seed=5) == 300


def test_running_trials_are_lied_about_as_optuna_does() -> None:
    # four trials asked at a time: each proposal sees up to three running trials (constant liar)
    assert _lockstep(CATEGORICAL, 300, pending=4, seed=7) == 300


def _workers(
    path: Path | None, sampler: optuna.samplers.BaseSampler
) -> tuple[optuna.Study, optuna.Study]:
    """Two Study objects on one storage; the second proposes with Optuna's TPE. On a journal
    file (``path``) each has its own JournalStorage, as two worker processes have."""

    def storage() -> optuna.storages.BaseStorage:
        return JournalStorage(JournalFileBackend(str(path))) if path else shared

    shared = optuna.storages.InMemoryStorage()
    optuna.create_study(study_name="s", storage=storage())
    return (
        optuna.load_study(study_name="s", storage=storage(), sampler=sampler),
        optuna.load_study(
            study_name="s", storage=storage(), sampler=optuna.samplers.TPESampler(seed=11)
        ),
    )


@pytest.mark.parametrize(
    ("storage", "steps"),
    [("memory", 120), pytest.param("journal", 80, marks=pytest.mark.slow)],
)
def test_other_workers_trials_are_seen_in_any_order(
    tmp_path: Path, storage: str, steps: int
) -> None:
    """Another worker's trials are created, left running (half suggested: its relative
    params stand in for the rest) and finished out of number order, between our proposals."""
    journal = storage == "journal"
    theirs = _workers(tmp_path / "a" if journal else None, optuna.samplers.TPESampler(seed=2))
    ours = _workers(tmp_path / "b" if journal else None, IncrementalTPESampler(seed=2))
    rng = np.random.default_rng(2)
    held: list[tuple[Trial, Trial]] = []
    names = list(CATEGORICAL)
    for step in range(steps):
        if rng.random() < 0.4:  # the other worker starts a trial and suggests half its knobs
            a, b = theirs[1].ask(), ours[1].ask()
            half = {k: CATEGORICAL[k] for k in names[: 1 + step % 8]}
            assert _suggest(a, half) == _suggest(b, half)
            held.append((a, b))
        a, b = theirs[0].ask(), ours[0].ask()
        pa, pb = _suggest(a, CATEGORICAL), _suggest(b, CATEGORICAL)
        assert pa == pb, f"step {step}: Optuna {pa} != ours {pb}"
        value = float(np.round(rng.random(), 1))
        theirs[0].tell(a, value)
        ours[0].tell(b, value)
        if held and rng.random() < 0.35:  # one of its trials ends, not necessarily the oldest
            a, b = held.pop(int(rng.integers(len(held))))
            _suggest(a, CATEGORICAL), _suggest(b, CATEGORICAL)
            value = float(np.round(rng.random(), 1))
            theirs[1].tell(a, value)
            ours[1].tell(b, value)
    numbers = [t.number for t in ours[0].get_trials(states=(TrialState.COMPLETE,))]
    assert numbers != sorted(numbers) or held  # some finished out of order, or still run


def test_default_tpe_strategy_is_ours_and_anything_else_optunas() -> None:
    space = _Space()
    build = STRATEGIES.get("tpe").build
    assert type(build(StrategyContext(space=space, seed=0))) is IncrementalTPESampler
    with_options = StrategyContext(space=space, seed=0, options={"n_startup_trials": 5})
    assert type(build(with_options)) is optuna.samplers.TPESampler
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pareto = build(StrategyContext(space=space, seed=0, n_objectives=2))
    assert type(pareto) is optuna.samplers.TPESampler


class _Space:
    """No knobs: the tpe builder reads the context's seed, options and objectives, and keeps
    the space for ``propose_batch`` (not called here)."""

    knobs: tuple[()] = ()


def test_float_parameters_and_dynamic_spaces_are_left_to_optuna() -> None:
    """Outside what it covers (a float knob) the parent's ``_sample`` runs: same proposals."""
    space: dict[str, BaseDistribution] = {
        "x": optuna.distributions.FloatDistribution(-1.0, 1.0),
        "k": IntDistribution(0, 3),
    }
    studies = [
        optuna.create_study(sampler=s)
        for s in (optuna.samplers.TPESampler(seed=1), IncrementalTPESampler(seed=1))
    ]
    for i in range(40):
        drawn = []
        for study in studies:
            t = study.ask()
            p = _suggest(t, space)
            if i % 5 == 0:  # a knob some trials have: outside the relative space
                p["extra"] = t.suggest_int("extra", 0, 3)
            study.tell(t, p["x"] ** 2 + p["k"])
            drawn.append(p)
        assert drawn[0] == drawn[1]
    sampler = studies[1].sampler
    # only the one-knob space of "extra" (sampled on its own) was ours to encode
    assert isinstance(sampler, IncrementalTPESampler) and sampler._history is not None
    assert list(sampler._history.space) == ["extra"]


def test_each_finished_trial_is_encoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real: Callable[[Any, Any], float] = CategoricalDistribution.to_internal_repr

    def counted(self: CategoricalDistribution, value: Any) -> float:
        calls.append(1)
        return real(self, value)

    study = optuna.create_study(sampler=IncrementalTPESampler(seed=0))
    for _ in range(60):
        t = study.ask()
        _suggest(t, CATEGORICAL)
        study.tell(t, 0.0)
    monkeypatch.setattr(CategoricalDistribution, "to_internal_repr", counted)
    t = study.ask()
    _suggest(t, CATEGORICAL)  # the 60 finished trials are already encoded
    # the trial's own suggestions and the one trial finished since the last proposal; Optuna's
    # TPESampler re-encodes all 60 x 8
    assert sum(calls) < 60


def test_trials_finishing_out_of_order_keep_their_place_by_number() -> None:
    """Trials 20 and 21 of another worker finish after 80 others, each alone between two of our
    proposals (ours still running). Each must be weighed as Optuna weighs it, by its number
    (the oldest kernels weigh less than the last 25), not by when it was first seen."""
    theirs = _workers(None, optuna.samplers.TPESampler(seed=4))
    ours = _workers(None, IncrementalTPESampler(seed=4))
    held: list[tuple[Trial, Trial]] = []
    ours_pending: list[tuple[Trial, Trial]] = []

    def propose(step: int) -> None:
        a, b = theirs[0].ask(), ours[0].ask()
        pa, pb = _suggest(a, CATEGORICAL), _suggest(b, CATEGORICAL)
        assert pa == pb, f"step {step}: Optuna {pa} != ours {pb}"
        ours_pending.append((a, b))

    for step in range(100):
        if step in (20, 21):
            a, b = theirs[1].ask(), ours[1].ask()
            assert _suggest(a, CATEGORICAL) == _suggest(b, CATEGORICAL)
            held.append((a, b))
            continue
        propose(step)
        if step == 80:  # the other worker's trials end one at a time between our proposals
            while held:
                a, b = held.pop(0)
                theirs[1].tell(a, 0.5)
                ours[1].tell(b, 0.5)
                propose(step)
        for a, b in ours_pending:
            value = (a.number * 7919 % 101) / 100
            theirs[0].tell(a, value)
            ours[0].tell(b, value)
        ours_pending.clear()


def test_threads_sharing_the_sampler_leave_its_history_whole() -> None:
    """A study's threads (``search.n_jobs``) share one sampler: after 4 threads' trials, its
    rows are exactly the finished trials, each once, with its own parameters and value. (A
    race without the sampler's lock is rare under the GIL: this checks the outcome, and did
    not fail in three runs without the lock.)"""
    sampler = IncrementalTPESampler(seed=0)
    study = optuna.create_study(sampler=sampler)

    def objective(trial: Trial) -> float:
        params = _suggest(trial, CATEGORICAL)
        return float(sum(int(v[-1]) for v in params.values()) % 5)

    study.optimize(objective, n_trials=160, n_jobs=4)
    history = sampler._history
    assert history is not None
    finished = {t.number: t for t in study.get_trials(states=(TrialState.COMPLETE,))}
    rows = history.rows()
    numbers = history.number[rows].tolist()
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert set(numbers) <= set(finished) and len(numbers) >= len(finished) - 4
    value_of = {row: key for key, _, row in history.complete}  # minimising: the value itself
    assert sorted(value_of) == sorted(rows.tolist())
    for row, number in zip(rows.tolist(), numbers, strict=True):
        trial = finished[number]
        assert value_of[row] == trial.value
        encoded = [CATEGORICAL[k].to_internal_repr(trial.params[k]) for k in KNOBS]
        assert history.x[row].tolist() == encoded


def test_a_search_proposes_what_optunas_tpe_proposes(mlp: nn.Module, digits: DataSplits) -> None:
    """The ``tpe`` strategy end to end (the study loop, the journal, constraints, the cache's
    repeats) against the same search with Optuna's TPESampler, which the strategy builds when
    given an option (here its default ``n_startup_trials``): the same trials, in order."""
    pairs = [[16, 8], [8, 6], [8, 4], [4, 2]]
    args: dict[str, Any] = {
        "space": {"by": "name", "choices": {"linear": {"data_in": pairs, "weight": pairs}}},
        "objectives": {
            "accuracy": {"direction": "maximize", "weight": 1.0},
            "model_size_bits": {"direction": "minimize", "weight": 0.2},
        },
        "constraints": {"accuracy_drop": {"max": 0.02}},
        "n_trials": 60,
        "seed": 3,
    }
    ours = search(mlp, digits.val, strategy="tpe", **args)
    optuna_tpe = {"name": "tpe", "options": {"n_startup_trials": 10}}
    theirs = search(mlp, digits.val, strategy=optuna_tpe, **args)
    assert ours.study is not None and theirs.study is not None
    assert type(ours.study.sampler) is IncrementalTPESampler
    assert type(theirs.study.sampler) is optuna.samplers.TPESampler
    assert any(t.feasible is False for t in ours.trials), "the test needs infeasible trials"
    assert [t.params for t in ours.trials] == [t.params for t in theirs.trials]
    assert len(ours.trials) == 60


def test_a_pickled_study_goes_on_proposing_what_optunas_does() -> None:
    """Optuna documents pickling an in-memory study to save it (e.g. with joblib); the sampler's
    lock is left out and its history read again. Referee: Optuna's TPESampler, pickled alike."""
    import pickle

    studies = [
        optuna.create_study(direction="maximize", sampler=cls(seed=5))
        for cls in (optuna.samplers.TPESampler, IncrementalTPESampler)
    ]
    rng = np.random.default_rng(5)
    for n in range(60):
        if n == 30:
            studies = [pickle.loads(pickle.dumps(s)) for s in studies]
        trials = [s.ask() for s in studies]
        proposals = [_suggest(t, CATEGORICAL) for t in trials]
        assert proposals[0] == proposals[1], f"trial {n}"
        value = float(np.round(rng.random(), 1))
        for s, t in zip(studies, trials, strict=True):
            s.tell(t, value)
    assert isinstance(studies[1].sampler, IncrementalTPESampler)
