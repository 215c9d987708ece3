"""Optuna's samplers as quantsearch builds them: the defaults changed for a reason, checked."""

from __future__ import annotations

import warnings
from typing import Any

import optuna
import pytest
import torch
from torch import nn

from quantsearch.graph import trace
from quantsearch.search import STRATEGIES
from quantsearch.search.space import SearchSpace, parse_space
from quantsearch.search.strategies import StrategyContext
from quantsearch.search.strategies.optuna_samplers import nsga_population

CHOICES = [[16, 8], [8, 4], [6, 3], [4, 2]]


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    gm = trace(nn.Sequential(*(nn.Linear(4, 4) for _ in range(4))).eval(), torch.zeros(2, 4))
    spec = parse_space({"by": "name", "choices": {f"_{i}": {"weight": CHOICES} for i in range(4)}})
    return SearchSpace(spec, gm)


def _run(
    space: SearchSpace, strategy: str, seed: int, trials: int, **ctx: Any
) -> list[optuna.trial.FrozenTrial]:
    """``trials`` trials of ``strategy`` on a made-up objective: the options' indices summed."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = space.distributions(STRATEGIES.get(strategy).encoding)

    def objective(trial: optuna.Trial) -> float:
        params = {name: trial._suggest(name, d) for name, d in dists.items()}
        return float(sum(space.decode(params).values()))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = STRATEGIES.get(strategy).build(StrategyContext(space=space, seed=seed, **ctx))
        study = optuna.create_study(direction="minimize", sampler=sampler)
        study.optimize(objective, n_trials=trials)
    return study.trials


def test_qmc_seeds_give_different_sobol_sequences_and_a_seed_repeats_its_own(
    space: SearchSpace,
) -> None:
    # Optuna draws the first trial with its independent sampler; the Sobol points follow.
    seq = {s: [t.params for t in _run(space, "qmc", s, 12)[1:]] for s in (0, 1)}
    assert seq[0] != seq[1]
    assert sum(a != b for a, b in zip(seq[0], seq[1], strict=True)) >= 8  # not a shared tail
    assert seq[0] == [t.params for t in _run(space, "qmc", 0, 12)[1:]]


def test_nsga_population_is_a_quarter_of_the_budget_unless_set() -> None:
    assert [nsga_population(n, {}) for n in (8, 40, 100, 199, 200, 1000)] == [4, 10, 25, 49, 50, 50]
    assert nsga_population(40, {"population_size": 30}) is None  # the user's choice stands
    assert nsga_population(None, {}) is None  # budget unknown: Optuna's default


@pytest.mark.parametrize("strategy", ["nsga2", "nsga3"])
def test_nsga_breeds_within_a_small_budget(space: SearchSpace, strategy: str) -> None:
    # Optuna records each trial's generation; with its default 50 all 24 would be generation 0
    # (random search). A quarter of the budget gives 6 per generation, so 4 generations.
    trials = _run(space, strategy, 0, 24, n_trials=24)
    generations = {v for t in trials for k, v in t.system_attrs.items() if "generation" in k}
    assert generations == {0, 1, 2, 3}


def test_nsga_warns_when_the_population_set_exceeds_a_quarter_of_the_budget(
    space: SearchSpace,
) -> None:
    ctx = StrategyContext(space=space, seed=0, n_trials=40, options={"population_size": 30})
    with pytest.warns(UserWarning, match=r"population_size = 30 .* budget \(40 trials\)"):
        STRATEGIES.get("nsga2").build(ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        STRATEGIES.get("nsga2").build(StrategyContext(space=space, seed=0, n_trials=40))
