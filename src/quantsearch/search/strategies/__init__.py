"""Search strategies: a registry of names mapped to functions that build Optuna samplers.

A strategy costs one file, one test and one registry line. Each builder receives a
:class:`StrategyContext` and returns an ``optuna.samplers.BaseSampler``; options from
``[search.strategy.options]`` pass straight through to the sampler's constructor, so an unknown
option is rejected with the sampler's own list of parameters.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial

from quantsearch.errors import ConfigError
from quantsearch.registry import Registry

if TYPE_CHECKING:
    from quantsearch.search.space import Encoding, SearchSpace

__all__ = ["STRATEGIES", "SpaceSampler", "Strategy", "StrategyContext", "build_sampler"]


@dataclass(frozen=True)
class StrategyContext:
    space: SearchSpace
    seed: int
    n_objectives: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    # Atomically claims a point index across workers (brute force); None: this process only.
    claim_point: Callable[[int, int], bool] | None = None  # (point index, trial number)


@dataclass(frozen=True)
class Strategy:
    name: str
    build: Callable[[StrategyContext], BaseSampler]
    description: str
    encoding: Encoding = "categorical"
    exhaustive: bool = False  # visits every point once, in order; needs a finite space
    multi_objective: bool = True


STRATEGIES: Registry[Strategy] = Registry("search.strategy")


def pass_options(cls: Any, ctx: StrategyContext, fixed: dict[str, Any]) -> Any:
    """``cls(**fixed, **ctx.options)``, rejecting options ``cls`` does not take by name."""
    params = inspect.signature(cls).parameters
    allowed = sorted(p for p in params if p not in fixed and p != "self")
    for name in ctx.options:
        if name not in allowed or name in fixed:
            raise ConfigError(
                f"search.strategy.options.{name} is not an option of {cls.__name__}; "
                f"allowed: {allowed}"
            )
    try:
        return cls(**fixed, **ctx.options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"search.strategy.options: {cls.__name__} rejected them: {exc}") from None


class SpaceSampler(BaseSampler):
    """Base of quantsearch's own samplers: each trial gets a whole point of a SearchSpace.

    Subclasses implement :meth:`propose`. A trial that brings its own parameters (an enqueued
    retry of a dead worker's trial) is left to them; a parameter outside the space (a user
    objective's own suggestion) is drawn at random.

    Args:
        space: the finite space.
        seed: seeds the random fallback (and, in subclasses, their own choices).
    """

    encoding: Encoding = "categorical"

    def __init__(self, space: SearchSpace, seed: int | None = None) -> None:
        self._space = space
        self._fallback = RandomSampler(seed=seed)

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return self._space.distributions(self.encoding)

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space or trial.system_attrs.get("fixed_params"):
            return {}
        return self.propose(study, trial)

    @abc.abstractmethod
    def propose(self, study: Study, trial: FrozenTrial) -> dict[str, Any]:
        """Parameter values (in ``encoding``) of the point ``trial`` evaluates."""

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)


def build_sampler(name: str, ctx: StrategyContext) -> BaseSampler:
    return STRATEGIES.get(name, key="search.strategy").build(ctx)


def _register_builtin() -> None:
    from quantsearch.search.strategies import brute_force, local, optuna_samplers

    for s in (brute_force.STRATEGY, local.STRATEGY, *optuna_samplers.STRATEGIES_):
        STRATEGIES.add(s.name, s, aliases=tuple(a for a in ALIASES.get(s.name, ())))


ALIASES = {
    "brute_force": ("brute-force", "exhaustive"),
    "nsga2": ("nsga-ii",),
    "nsga3": ("nsga-iii",),
}

_register_builtin()
