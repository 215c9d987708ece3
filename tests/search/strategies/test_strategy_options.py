"""Each strategy's option schema (checked at config load) against the referee it guards:
Optuna's own sampler classes. Every option a config may set is a parameter of the sampler,
every value the schema accepts at the edges of its range builds the sampler, and where Optuna
checks a range itself, the schema refuses what Optuna refuses."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import optuna.samplers as S
import pytest

from quantsearch.errors import ConfigError
from quantsearch.search.config import parse_search_config
from quantsearch.search.strategies import STRATEGIES
from quantsearch.search.strategies.brute_force import BruteForceSampler
from quantsearch.search.strategies.local import LocalSearchSampler
from quantsearch.search.strategies.options import Option
from quantsearch.search.strategies.random_batch import BatchRandomSampler

OPTUNA = {
    "tpe": S.TPESampler,
    "nsga2": S.NSGAIISampler,
    "nsga3": S.NSGAIIISampler,
    "qmc": S.QMCSampler,
    "gp": S.GPSampler,
}


def _edges(option: Option) -> list[Any]:
    """Values the schema accepts: both ends of a range, every choice, both booleans."""
    if option.kind == "bool":
        return [True, False]
    if option.kind == "choice":
        return list(option.choices)
    if option.kind == "points":
        return [[[0.0], [1.0]]]  # one objective (a weighted sum)
    cast = int if option.kind == "int" else float
    return [cast(v) for v in (option.minimum, option.maximum) if v is not None]


def _build(cls: type, options: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated and experimental options still build
        cls(**options)


@pytest.mark.parametrize("name", sorted(OPTUNA))
def test_every_option_is_a_parameter_of_optunas_sampler(name: str) -> None:
    params = inspect.signature(OPTUNA[name]).parameters
    assert set(STRATEGIES.get(name).options) <= set(params) - {"seed"}


# Our samplers, which pass_options builds as it builds Optuna's: it no longer checks names or
# types against a sampler's signature, so the schema must list only what the class takes.
OURS = {
    "brute_force": BruteForceSampler,
    "grid": S.GridSampler,
    "local": LocalSearchSampler,
    "random": BatchRandomSampler,
}


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_option_is_a_parameter_of_our_sampler(name: str) -> None:
    params = inspect.signature(OURS[name]).parameters
    fixed = {"space", "search_space", "seed"}  # what the builders pass themselves
    assert set(STRATEGIES.get(name).options) <= set(params) - fixed


def test_a_float_option_refuses_an_integer_past_floats_range() -> None:
    """``number_rule`` compares it exactly: ``math.isfinite(10**400)`` was an OverflowError
    (a traceback) in the schema's own range check."""
    with pytest.raises(ConfigError, match=r"^k\.prior_weight: got 1000"):
        STRATEGIES.get("tpe").check_options({"prior_weight": 10**400}, "k")
    with pytest.raises(ConfigError, match=r"^k\.reference_points: got"):
        STRATEGIES.get("nsga3").check_options({"reference_points": [[10**400]]}, "k")


@pytest.mark.parametrize("name", sorted(OPTUNA))
def test_what_the_schema_accepts_optuna_builds(name: str) -> None:
    strategy = STRATEGIES.get(name)
    for option, spec in strategy.options.items():
        for value in _edges(spec):
            options = {option: value}
            if option == "group":
                options["multivariate"] = True
            strategy.check_options(options, "k", n_objectives=1)
            _build(OPTUNA[name], options)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("nsga2", {"population_size": 1}),
        ("nsga2", {"mutation_prob": 1.5}),
        ("nsga2", {"crossover_prob": -0.1}),
        ("nsga2", {"swapping_prob": 2.0}),
        ("nsga3", {"population_size": 0}),
        ("qmc", {"qmc_type": "bogus"}),
        ("tpe", {"group": True, "multivariate": False}),
    ],
)
def test_what_optuna_refuses_the_schema_refuses(name: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _build(OPTUNA[name], options)
    with pytest.raises(ConfigError, match=r"^k\." + next(iter(options))):
        STRATEGIES.get(name).check_options(options, "k")


def test_options_are_checked_at_config_load() -> None:
    """``parse_search_config`` names the dotted key; nothing is built or loaded."""
    raw = {
        "strategy": {"name": "tpe", "options": {"n_startup_trials": -1}},
        "space": {"choices": {"linear": {"weight": [[8, 4]]}}},
        "objectives": {"accuracy": {"direction": "maximize"}},
    }
    with pytest.raises(ConfigError, match=r"^search\.strategy\.options\.n_startup_trials: got -1"):
        parse_search_config(raw)
    raw["strategy"] = {"name": "tpe", "options": {"n_startup_trials": 0}}
    assert parse_search_config(raw).strategy.options == {"n_startup_trials": 0}
