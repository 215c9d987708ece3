"""Strategy comparison: seeded runs of several strategies on one space, measured honestly.

Every strategy runs once per seed on the same space, objective and constraints; the runs share
one evaluation cache without changing any run's trial sequence (:mod:`.run`). Each run is
measured from its own trial sequence (:mod:`.measures`: trials and distinct evaluations to the
optimum, best so far, hypervolume ratio, duplicate and front shares), against the true optimum
or Pareto front when the space was enumerated, else the best any run found (:mod:`.analysis`).
Per strategy every measure is summarised over seeds by its median and interquartile range
(:mod:`.summary`, :mod:`.stats`). :class:`ComparisonResult` holds it all and writes and reads
the comparison's files (:mod:`.result`, :mod:`.configs`). The definitions are in
``docs/comparing.md``.

Modules, lowest first: ``stats`` -> ``measures`` -> ``summary`` -> ``configs`` -> ``result``
-> ``analysis`` -> ``run``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from quantsearch.compare.analysis import compare_results, prefix_overlap
from quantsearch.compare.configs import ConfigPoint, distinct_configs
from quantsearch.compare.measures import (
    RunMetrics,
    best_so_far,
    counted_trials,
    measure_run,
    new_config_flags,
)
from quantsearch.compare.result import ComparisonResult
from quantsearch.compare.stats import Curve, Quartiles, quantile
from quantsearch.compare.summary import StrategyStats, auto_budgets
from quantsearch.search.pareto import hypervolume, hypervolume_reference_point

if TYPE_CHECKING:
    from quantsearch.compare.run import RunCache, compare_from_config, run_comparison

__all__ = [
    "ComparisonResult",
    "ConfigPoint",
    "Curve",
    "Quartiles",
    "RunCache",
    "RunMetrics",
    "StrategyStats",
    "auto_budgets",
    "best_so_far",
    "compare_from_config",
    "compare_results",
    "counted_trials",
    "distinct_configs",
    "hypervolume",
    "hypervolume_reference_point",
    "measure_run",
    "new_config_flags",
    "prefix_overlap",
    "quantile",
    "run_comparison",
]

# ``run`` imports torch and optuna (it runs searches): loaded on first use, so that reading a
# comparison's files (``quantsearch report``) does not pay for them.
_LAZY = {"RunCache": "run", "compare_from_config": "run", "run_comparison": "run"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"quantsearch.compare.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'quantsearch.compare' has no attribute {name!r}")
