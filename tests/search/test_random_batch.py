"""Random search proposed K trials at a time draws what Optuna's RandomSampler draws.

Referee: Optuna's own ``RandomSampler``, unmodified, in a study whose trials suggest the
space's knobs in order (as the one-at-a-time trial loop does); and the same search run with
batches off, both studies read back from their journal files by Optuna's own reader
(``tests/search/test_batch.py``'s ``_stored``).
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from torch import nn

from quantsearch.data import DataSplits
from quantsearch.graph import trace
from quantsearch.passes.transform.modules import quantizable_kinds
from quantsearch.search import search
from quantsearch.search.batch import Batches
from quantsearch.search.space import SearchSpace, parse_space
from quantsearch.search.strategies.random_batch import BatchRandomSampler, draws_of
from tests.search.test_batch import OBJ, _both, _stored

# Per layer, with a knob of one choice (it draws nothing) between knobs of 4, 3 and 2 choices.
SPACE = {
    "by": "name",
    "choices": {
        "seq_blocks_0": {"data_in": [[16, 8], [8, 6], [8, 4], [4, 2]], "weight": [[8, 4]]},
        "seq_blocks_3": {"data_in": [[16, 8], [8, 4], [4, 2]], "weight": [[8, 4], [4, 2]]},
    },
}


def _space(mlp: nn.Module, digits: DataSplits) -> SearchSpace:
    gm = trace(mlp, digits.val.x[:8])
    return SearchSpace(parse_space(SPACE), gm, set(quantizable_kinds()))


def _optuna_points(space: SearchSpace, seed: int, n: int) -> list[dict[str, int]]:
    """``n`` trials of Optuna's RandomSampler, each suggesting every knob in order."""

    def objective(trial: optuna.Trial) -> float:
        for k in space.knobs:
            trial.suggest_categorical(k.name, k.labels)
        return 0.0

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(objective, n_trials=n)
    return [space.decode(t.params) for t in study.trials]


def test_batches_draw_what_optuna_random_sampler_draws(mlp: nn.Module, digits: DataSplits) -> None:
    space = _space(mlp, digits)
    assert [k.size for k in space.knobs] == [4, 1, 3, 2]
    for seed in (0, 1, 7):
        expected = _optuna_points(space, seed, 40)
        sampler = BatchRandomSampler(space, seed=seed)
        study = optuna.create_study(sampler=sampler)
        got = []
        for k in (1, 3, 7, 29):  # batches of every size read one stream
            got += sampler.propose_batch(study, k)
        assert got == expected
        assert len({space.index_of(p) for p in got}) > 10  # not one point repeated


def test_draws_of_a_stored_trial_count_the_choices_drawn(
    mlp: nn.Module, digits: DataSplits
) -> None:
    """A trial drew one number per choice of every knob of more than one choice, none for a
    knob an enqueued trial fixed: skipping that many puts Optuna's stream where it was."""
    space = _space(mlp, digits)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    study.enqueue_trial({space.knobs[0].name: space.knobs[0].labels[2]})

    def objective(trial: optuna.Trial) -> float:
        for k in space.knobs:
            trial.suggest_categorical(k.name, k.labels)
        return 0.0

    study.optimize(objective, n_trials=3)
    assert [draws_of(t) for t in study.trials] == [3 + 2, 4 + 3 + 2, 4 + 3 + 2]


def test_only_finished_trials_are_skipped(mlp: nn.Module, digits: DataSplits) -> None:
    """A trial still running (another thread's) when the sampler starts is not skipped: on a
    new study the sampler draws Optuna's first numbers; a finished one is."""
    space = _space(mlp, digits)
    storage = optuna.storages.InMemoryStorage()
    other = optuna.create_study(storage=storage, sampler=optuna.samplers.RandomSampler(seed=9))
    running = other.ask()
    for k in space.knobs:
        running.suggest_categorical(k.name, k.labels)
    sampler = BatchRandomSampler(space, seed=4)
    study = optuna.load_study(study_name=other.study_name, storage=storage, sampler=sampler)
    assert sampler.propose_batch(study, 5) == _optuna_points(space, 4, 5)
    other.tell(running, 0.0)
    sampler = BatchRandomSampler(space, seed=4)
    study = optuna.load_study(study_name=other.study_name, storage=storage, sampler=sampler)
    assert sampler.propose_batch(study, 5) == _optuna_points(space, 4, 6)[1:]


@pytest.mark.parametrize("strategy", ["random"])
def test_random_search_stores_the_same_trials_batched(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mlp: nn.Module,
    digits: DataSplits,
    strategy: str,
) -> None:
    kw = dict(model=mlp, data=digits.val, space=SPACE, objectives=OBJ, strategy=strategy)
    monkeypatch.setattr("quantsearch.search.batch.TARGET_S", 60.0)  # K: up to MAX_K, not timed
    batched = _both(tmp_path, monkeypatch, n_trials=40, seed=5, **kw)
    trials = batched.trials
    assert len(trials) == 40 and 10 < batched.n_evaluations < 40  # repeats: cache hits too
    starts = [t.datetime_start for t in batched.study.trials]
    assert len(set(starts)) < 10  # it did go in batches
    assert _stored(tmp_path / "batched") == _stored(tmp_path / "single")


def test_resumed_random_search_continues_one_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlp: nn.Module, digits: DataSplits
) -> None:
    """Stopped after 7 trials (and after an n_evaluations budget), resumed to 30: the trials
    of one uninterrupted 30-trial run, batched or not, draw for draw."""
    kw = dict(model=mlp, data=digits.val, space=SPACE, objectives=OBJ, strategy="random", seed=2)
    search(run_dir=tmp_path / "batched", n_trials=7, **kw)
    search(run_dir=tmp_path / "batched", n_trials=100, n_evaluations=12, **kw)
    search(run_dir=tmp_path / "batched", n_trials=30, **kw)
    with monkeypatch.context() as m:
        m.setattr(Batches, "usable", staticmethod(lambda *a: False))
        search(run_dir=tmp_path / "single", n_trials=7, **kw)
        search(run_dir=tmp_path / "single", n_trials=100, n_evaluations=12, **kw)
        search(run_dir=tmp_path / "single", n_trials=30, **kw)
    search(run_dir=tmp_path / "straight", n_trials=30, **kw)
    single = _stored(tmp_path / "single")
    assert _stored(tmp_path / "batched") == single
    params = [p for _, _, p, *_ in single]
    assert params == [p for _, _, p, *_ in _stored(tmp_path / "straight")]
    space = _space(mlp, digits)
    assert [space.decode(p) for p in params] == _optuna_points(space, 2, 30)
