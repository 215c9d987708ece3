"""Objectives and constraints of ``[search]``: their specs and how they are parsed.

Each names a metric: a built-in one (:mod:`quantsearch.metrics`) or one a user's evaluate
function returns, which needs a direction: declared (``[metrics] directions``, or
``evaluate_directions`` in Python) or given by its objective.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from quantsearch.errors import ConfigError, MetricError
from quantsearch.metrics.specs import (
    METRICS,
    REGRESSION_METRICS,
    TRIAL_METRICS,
    builtin_metric,
    metric_names,
    metric_spec,
    user_metric_name_problem,
)
from quantsearch.validate import check_keys, get_bool, get_float, get_str, toml_key

__all__ = [
    "DERIVED",
    "ConstraintSpec",
    "ObjectiveSpec",
    "check_bound",
    "check_metric",
    "default_recorded",
    "parse_constraints",
    "parse_objectives",
]


@dataclass(frozen=True)
class ObjectiveSpec:
    """One metric in the objective. ``weight`` is used by ``weighted_sum`` only."""

    metric: str
    direction: Literal["maximize", "minimize"]
    weight: float = 1.0
    relative_to_baseline: bool = False


@dataclass(frozen=True)
class ConstraintSpec:
    """``value(trial) <op> bound``. ``kind`` says how ``value`` derives from the metric.

    kinds: ``max``/``min`` (the metric itself), ``max_ratio``/``min_ratio`` (metric / baseline),
    ``drop`` (baseline - metric, bounded above; ``accuracy_drop = { max = 0.01 }``) and
    ``increase`` (metric - baseline, bounded above; ``loss_increase = { max = 0.1 }``).
    """

    name: str  # the key as written, e.g. "accuracy_drop"
    metric: str
    kind: Literal["max", "min", "max_ratio", "min_ratio", "drop", "increase"]
    bound: float


def _direction(name: str, key: str, user: Mapping[str, str] | None) -> str | None:
    """The metric's direction: a built-in's own, or a user metric's declared one. ``None``
    for a name an evaluate function may return (``user`` given) that has no direction yet; an
    unknown name is a ConfigError naming ``key`` and the known ones."""
    if builtin_metric(name) or user is None:
        try:
            return metric_spec(name).direction
        except MetricError:
            raise ConfigError(
                f"{key}: got an unknown metric {name!r}, allowed: one of {metric_names()}, "
                "top<k>_accuracy or an evaluate function's metric (with metrics.evaluate)"
            ) from None
    return user.get(name)


def check_metric(name: str, key: str, user: Mapping[str, str] | None) -> None:
    """``name`` is a known metric with a direction (an evaluate function's, declared)."""
    if _direction(name, key, user) is None:
        raise ConfigError(
            f"{key}: got {name!r}, an evaluate function's metric without a declared direction, "
            f"allowed: built-in metrics and the names in metrics.directions (evaluate_directions "
            f"in Python) or in objectives with a direction"
        )


def parse_objectives(
    raw: Mapping[str, Any], key: str, user: dict[str, str] | None
) -> tuple[str, tuple[ObjectiveSpec, ...]]:
    """The objectives; an evaluate function's metric with a direction here and none declared
    is declared in ``user`` with it."""
    combine = get_str(raw, "combine", key, "weighted_sum") or "weighted_sum"
    if combine not in ("weighted_sum", "pareto"):
        raise ConfigError(
            f"{key}.combine: got {combine!r}, allowed: one of ['pareto', 'weighted_sum']"
        )
    out: list[ObjectiveSpec] = []
    for name, table in raw.items():
        if name == "combine":
            continue
        okey = f"{key}.{name}"
        default = _direction(name, key, user)
        if isinstance(table, (int, float)) and not isinstance(table, bool):
            table = {"weight": table}
        if not isinstance(table, Mapping):
            raise ConfigError(
                f"{okey}: got {table!r}, allowed: a number (a weight) or a table like "
                "{ direction = 'maximize', weight = 1.0 }"
            )
        check_keys(table, {"direction", "weight", "relative_to_baseline"}, okey)
        direction = get_str(table, "direction", okey, default)
        if direction is None:
            raise ConfigError(
                f"{okey}.direction: got no value for an evaluate function's metric with no "
                f"declared direction, allowed: 'maximize' or 'minimize' (or metrics.directions)"
            )
        if direction not in ("maximize", "minimize"):
            raise ConfigError(
                f"{okey}.direction: got {direction!r}, allowed: one of ['maximize', 'minimize']"
            )
        if user is not None and default is None:
            problem = user_metric_name_problem(name)
            if problem is not None:
                raise ConfigError(f"{toml_key(key, name)}: {problem}")
            user[name] = direction
        weight = get_float(table, "weight", okey, 1.0)
        assert weight is not None
        if weight < 0:
            raise ConfigError(
                f"{okey}.weight: got {weight}, allowed: a number >= 0 (the direction gives the sign)"
            )
        out.append(
            ObjectiveSpec(
                name,
                direction,  # type: ignore[arg-type]
                weight,
                get_bool(table, "relative_to_baseline", okey, False),
            )
        )
    if not out:
        raise ConfigError(
            f"{key}: got no metric, allowed: at least one, e.g. accuracy = "
            "{ direction = 'maximize' }"
        )
    if combine == "pareto" and len(out) < 2:
        raise ConfigError(
            f"{key}: got {len(out)} objective with combine = 'pareto', allowed: at least two"
        )
    return combine, tuple(out)


_CONSTRAINT_SUFFIXES = {"_drop": "drop", "_increase": "increase"}


def parse_constraints(
    raw: Mapping[str, Any], key: str, user: Mapping[str, str] | None
) -> tuple[ConstraintSpec, ...]:
    out: list[ConstraintSpec] = []
    for name, table in raw.items():
        ckey = f"{key}.{name}"
        metric, derived = name, None
        for suffix, kind in _CONSTRAINT_SUFFIXES.items():
            if name.endswith(suffix) and name not in METRICS and name not in (user or {}):
                metric, derived = name[: -len(suffix)], kind
        check_metric(metric, key, user)
        if not isinstance(table, Mapping) or len(table) != 1:
            allowed = ["max"] if derived else ["max", "max_ratio", "min", "min_ratio"]
            raise ConfigError(
                f"{ckey}: got {table!r}, allowed: a table with exactly one of {allowed}"
            )
        (form,) = table
        allowed_forms = {"max"} if derived else {"max", "min", "max_ratio", "min_ratio"}
        if form not in allowed_forms:
            raise ConfigError(
                f"{ckey}: got an unknown bound {form!r}, allowed: one of {sorted(allowed_forms)}"
            )
        value = get_float(table, form, ckey)
        assert value is not None
        kind = derived or form
        out.append(ConstraintSpec(name, metric, kind, value))  # type: ignore[arg-type]
    return tuple(out)


def default_recorded(user: Mapping[str, str] | None, named: Iterable[str] = ()) -> tuple[str, ...]:
    """What a trial records unless ``metrics`` says otherwise: the trial metrics; with an
    evaluate function, its metrics and the static trial metrics (sizes, bits); with a
    regression metric among ``named`` (the objectives' and constraints' metrics), ``mae``,
    ``mse`` and the static trial metrics. Classification quality needs class labels, so it is
    left out of both.

    Example:
        >>> default_recorded(None, ["mse"])
        ('mae', 'mse', 'model_size_bits', 'avg_weight_bits', 'bitops')
    """
    static = tuple(m for m in TRIAL_METRICS if metric_spec(m).kind == "static")
    if user is not None:
        return (*user, *static)
    if any(m in REGRESSION_METRICS for m in named):
        return (*REGRESSION_METRICS, *static)
    return TRIAL_METRICS


DERIVED = ("drop", "increase")  # constraint kinds measured against the baseline


def check_bound(c: ConstraintSpec, key: str) -> None:
    """A bound some value can meet and some can break: a ratio to the baseline is > 0; every
    built-in metric is >= 0, and a fraction (accuracy) is at most 1, so is its drop. At the
    ends, ``min = 0`` (or ``min_ratio = 0``) is met by every value, ``max = 0`` only by 0,
    a fraction's ``max = 1`` by every value.

    A drop or increase bounds what quantization costs against the unquantized baseline, so it
    is >= 0 (0: no cost at all): a negative one (``loss_increase = { max = -1 }``) asks every
    trial to beat the float model by that much, which the float model itself does not."""
    if c.kind in ("max_ratio", "min_ratio"):
        lo, hi, lo_open, hi_open = 0.0, math.inf, True, False
    elif builtin_metric(c.metric):
        fraction = metric_spec(c.metric).unit == "fraction"
        lo, hi = 0.0, 1.0 if fraction else math.inf
        lo_open = c.kind not in DERIVED
        hi_open = fraction and c.kind != "min"
    else:
        return  # an evaluate function's metric: its range is the function's own
    if (lo < c.bound or (c.bound == lo and not lo_open)) and (
        c.bound < hi or (c.bound == hi and not hi_open)
    ):
        return
    if hi == math.inf:
        rule = f"{'>' if lo_open else '>='} {lo:g}"
    else:
        rule = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    unit = " (a fraction: 0.9 for 90%)" if hi == 1.0 else ""
    what = c.metric
    if c.kind in DERIVED:
        what = f"the {c.kind} of {c.metric} from the unquantized model"
    if c.bound in (lo, hi):
        unit = " (only a value of 0 meets it)" if c.bound == 0 and "max" in c.kind else ""
        unit = unit or " (every value meets it)"
    raise ConfigError(f"{key}: got {c.bound}, allowed: a bound {rule} for {what}{unit}")
