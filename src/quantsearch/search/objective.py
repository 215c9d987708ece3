"""Objectives and constraints as pure functions of a trial's metrics and the float baseline.

Weighted sum: ``sum(sign(direction) * weight * m)`` maximised, where ``m`` is the metric, divided
by its baseline value when ``relative_to_baseline``; the direction gives the sign, so users never
pass negative weights (MASE made them). Pareto: one Optuna objective per metric with its own
direction. Constraint values follow Optuna's ``constraints_func`` convention: ``<= 0`` is feasible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from quantsearch.errors import MetricError
from quantsearch.metrics.specs import SPREAD_SUFFIX, metric_spec
from quantsearch.search.config import ConstraintSpec, ObjectiveSpec, SearchConfig

__all__ = [
    "constraint_values",
    "objective_names",
    "objective_noise",
    "objective_values",
    "study_directions",
]


def _relative(metric: str, value: float, baseline: Mapping[str, float]) -> float:
    base = baseline.get(metric)
    if base is None or base == 0 or not math.isfinite(base):
        raise MetricError(
            f"{metric}: relative_to_baseline needs a finite, non-zero baseline value (got {base!r})"
        )
    return value / base


def _objective_metric(
    o: ObjectiveSpec, metrics: Mapping[str, float], baseline: Mapping[str, float]
) -> float:
    value = float(metrics[o.metric])
    return _relative(o.metric, value, baseline) if o.relative_to_baseline else value


def study_directions(cfg: SearchConfig) -> list[str]:
    """Optuna study directions: one ``maximize`` (weighted sum) or one per objective (pareto)."""
    if cfg.combine == "weighted_sum":
        return ["maximize"]
    return [o.direction for o in cfg.objectives]


def objective_names(cfg: SearchConfig) -> list[str]:
    """Names of the study's objective values (``Study.set_metric_names``), one per direction.

    Pareto: the metrics. A weighted sum: ``weighted_sum``, unless it is one metric maximised
    as it is (weight 1, not relative), whose value the objective then is.

    Example:
        >>> from quantsearch.search.config import ObjectiveSpec, SearchConfig
        >>> objective_names(SearchConfig(objectives=(ObjectiveSpec("accuracy", "maximize", 1.0),)))
        ['accuracy']
    """
    if cfg.combine == "pareto":
        return [o.metric for o in cfg.objectives]
    (o, *rest) = cfg.objectives
    plain = not rest and o.direction == "maximize" and o.weight == 1 and not o.relative_to_baseline
    return [o.metric if plain else "weighted_sum"]


def objective_values(
    cfg: SearchConfig, metrics: Mapping[str, float], baseline: Mapping[str, float]
) -> tuple[float, ...]:
    """The values Optuna is told for a trial with these ``metrics``.

    Example:
        >>> from quantsearch.search.config import ObjectiveSpec, SearchConfig
        >>> cfg = SearchConfig(objectives=(
        ...     ObjectiveSpec("accuracy", "maximize", 1.0),
        ...     ObjectiveSpec("model_size_bits", "minimize", 0.5, relative_to_baseline=True)))
        >>> objective_values(cfg, {"accuracy": 0.9, "model_size_bits": 50}, {"model_size_bits": 100})
        (0.65,)
    """
    if cfg.combine == "weighted_sum":
        total = 0.0
        for o in cfg.objectives:
            sign = 1.0 if o.direction == "maximize" else -1.0
            total += sign * o.weight * _objective_metric(o, metrics, baseline)
        return (total,)
    return tuple(_objective_metric(o, metrics, baseline) for o in cfg.objectives)


def objective_noise(
    cfg: SearchConfig, baseline: Mapping[str, float]
) -> tuple[float, tuple[str, ...]]:
    """How far apart two weighted-sum objective values must be to be told apart, and the noisy
    metrics that make it so: per objective on a noisy metric (``MetricSpec.deterministic``
    false), its weight times the float baseline's spread ``<metric>_iqr`` (divided by the
    baseline value when relative), summed. ``0.0`` with no noisy objective, or for a Pareto
    study (the noisy metrics are still named).

    Example:
        >>> from quantsearch.search.config import ObjectiveSpec, SearchConfig
        >>> cfg = SearchConfig(objectives=(ObjectiveSpec("accuracy", "maximize", 1.0),
        ...     ObjectiveSpec("latency_ms", "minimize", 0.5, relative_to_baseline=True)))
        >>> objective_noise(cfg, {"latency_ms": 2.0, "latency_ms_iqr": 0.4})
        (0.1, ('latency_ms',))
    """
    noisy = tuple(o.metric for o in cfg.objectives if not metric_spec(o.metric).deterministic)
    if cfg.combine != "weighted_sum":
        return 0.0, noisy
    total = 0.0
    for o in cfg.objectives:
        spread = baseline.get(o.metric + SPREAD_SUFFIX)
        if o.metric not in noisy or spread is None or not math.isfinite(spread):
            continue
        total += o.weight * (
            abs(_relative(o.metric, spread, baseline)) if o.relative_to_baseline else spread
        )
    return total, noisy


def _constraint_value(
    c: ConstraintSpec, metrics: Mapping[str, float], baseline: Mapping[str, float]
) -> float:
    v = float(metrics[c.metric])
    if c.kind == "max":
        return v - c.bound
    if c.kind == "min":
        return c.bound - v
    if c.kind in ("max_ratio", "min_ratio"):
        r = _relative(c.metric, v, baseline)
        return r - c.bound if c.kind == "max_ratio" else c.bound - r
    b = float(baseline[c.metric])
    if c.kind == "drop":
        return (b - v) - c.bound
    return (v - b) - c.bound  # increase


def constraint_values(
    constraints: Sequence[ConstraintSpec],
    metrics: Mapping[str, float],
    baseline: Mapping[str, float],
) -> list[float]:
    """One value per constraint; the trial is feasible when every value is ``<= 0``."""
    return [_constraint_value(c, metrics, baseline) for c in constraints]
