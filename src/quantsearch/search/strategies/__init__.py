"""Search strategies: a registry of names mapped to functions that build Optuna samplers.

A strategy costs one file (a :class:`Strategy` built on :mod:`.base`), one test and one line
here.
"""

from __future__ import annotations

from quantsearch.search.strategies import brute_force, local, optuna_samplers, sensitivity
from quantsearch.search.strategies.base import (
    STRATEGIES,
    Encoding,
    Space,
    SpaceSampler,
    Strategy,
    StrategyContext,
    build_sampler,
    pass_options,
)

__all__ = [
    "STRATEGIES",
    "Encoding",
    "Space",
    "SpaceSampler",
    "Strategy",
    "StrategyContext",
    "build_sampler",
    "pass_options",
]

for _strategy in (
    brute_force.STRATEGY,
    local.STRATEGY,
    sensitivity.STRATEGY,
    *optuna_samplers.STRATEGIES_,
):
    STRATEGIES.add(_strategy.name, _strategy, aliases=_strategy.aliases)
