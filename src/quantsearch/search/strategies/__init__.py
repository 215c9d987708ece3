"""Search strategies: a registry of names mapped to functions that build Optuna samplers.

A strategy costs one file, one test and one registry line. Each builder receives a
:class:`StrategyContext` and returns an ``optuna.samplers.BaseSampler``; options from
``[search.strategy.options]`` pass straight through to the sampler's constructor, so an unknown
option is rejected with the sampler's own list of parameters.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from quantsearch.errors import ConfigError
from quantsearch.registry import Registry

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler

    from quantsearch.search.space import Encoding, SearchSpace

__all__ = ["STRATEGIES", "Strategy", "StrategyContext", "build_sampler"]


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
