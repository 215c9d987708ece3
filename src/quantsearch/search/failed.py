"""A config that fails (it raises, or a metric is NaN) recorded as a bad result, not an unknown.

Optuna's samplers skip FAIL trials: TPE learns nothing from them and proposes failing configs
again (22 of 40 trials on a model failing below some width). So the study loop records a failed
config as a COMPLETE trial with its ``error`` set (:attr:`TrialInfo.config_failed`), infeasible,
and with finite values no better than the worst measured so far:

* **objective values**: per objective, the worst value of the study's measured trials (the
  least for ``maximize``, the greatest for ``minimize``); before any was measured, the float
  baseline's value made worse by ``1 + |value|``;
* **constraints** (``<= 0`` is met, Optuna's convention): with constraints configured, each at
  the greatest value measured so far and at least :data:`FAILED_VIOLATION`; without, one
  constraint (:data:`FAILED_CONSTRAINT`, the only entry of Optuna's constraints list) at
  :data:`FAILED_VIOLATION`, which every measured trial of such a study carries at 0 (Optuna's GP sampler requires the same constraint names on
  every trial).

TPE (Optuna 5) puts infeasible trials in its "bad" group, NSGA-II ranks them after every
feasible one, and GP models them as infeasible. quantsearch's own readers never choose them: a
failed config is never feasible, never the best, never on the Pareto front, and the cache
answers its repeats with the failure. Studies from before this (failed configs as FAIL trials
with an ``error``) read the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from optuna.study import Study
from optuna.trial import TrialState

from quantsearch.errors import MetricError
from quantsearch.search import optuna_compat
from quantsearch.search.config import SearchConfig
from quantsearch.search.objective import objective_values, study_directions
from quantsearch.search.trial import TrialInfo

__all__ = [
    "FAILED_CONSTRAINT",
    "FAILED_VIOLATION",
    "failed_outcome",
    "measured_constraints",
]

FAILED_CONSTRAINT = "quantsearch.failed"
FAILED_VIOLATION = 1.0


def failed_values(
    directions: Sequence[str], measured: Sequence[Sequence[float]], baseline: Sequence[float]
) -> tuple[float, ...]:
    """The objective values told for a failed config (see the module doc).

    Example:
        >>> failed_values(["maximize", "minimize"], [(0.5, 10.0), (0.7, 30.0)], (0.9, 100.0))
        (0.5, 30.0)
        >>> failed_values(["maximize"], [], (0.5,))
        (-1.0,)
    """
    out = []
    for i, d in enumerate(directions):
        seen = [v[i] for v in measured]
        if seen:
            out.append(min(seen) if d == "maximize" else max(seen))
        else:
            b = baseline[i]
            out.append(b - (1 + abs(b)) if d == "maximize" else b + (1 + abs(b)))
    return tuple(out)


def failed_outcome(
    study: Study, cfg: SearchConfig, baseline: Mapping[str, float]
) -> tuple[tuple[float, ...], list[float]]:
    """The objective values and the constraints list a failed config gets in ``study`` now
    (see the module doc); nothing is written."""
    measured = [
        ft
        for ft in optuna_compat.study_trials(study, (TrialState.COMPLETE,))
        if ft.values is not None and not TrialInfo.from_trial(ft).config_failed
    ]
    if cfg.constraints:  # stored in config order (optuna_compat.set_constraints)
        seen = [optuna_compat.constraint_list(ft) for ft in measured]
        cons = [
            max([FAILED_VIOLATION, *(v[i] for v in seen if len(v) > i)])
            for i in range(len(cfg.constraints))
        ]
    else:
        cons = [FAILED_VIOLATION]  # FAILED_CONSTRAINT
    try:
        base = objective_values(cfg, baseline, baseline)
    except (KeyError, ValueError, MetricError):  # a baseline without an objective's metric
        base = tuple(0.0 for _ in study_directions(cfg))
    return failed_values(study_directions(cfg), [ft.values for ft in measured], base), cons


def measured_constraints(cfg: SearchConfig, values: Sequence[float]) -> list[float]:
    """The constraints list of a measured trial: its constraint ``values``, or, in a study
    without constraints, :data:`FAILED_CONSTRAINT` met (see the module doc)."""
    return [float(v) for v in values] if cfg.constraints else [0.0]
