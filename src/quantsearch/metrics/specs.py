"""The metric registry: one stable snake_case name per metric, with its label, unit,
direction, kind, compute function and whether it is deterministic.

A metric costs one registry line here and, unless an existing group computes it, one function
in :mod:`quantsearch.metrics.groups`; ``tests/metrics/test_registry.py`` runs every registered
metric through the same contract.

These names are what search objectives and constraints use. Compute-cost and activation
metrics are **per sample** (the traced batch's count divided by its size), so they do not depend
on the batch a graph happened to be traced on. This module imports no torch, so listing the
metrics (``quantsearch metrics``) is instant.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from quantsearch.errors import MetricError
from quantsearch.metrics.groups import (
    Compute,
    UserMetrics,
    activation_metrics,
    compute_cost_metrics,
    latency_metrics,
    param_metrics,
    quality_metrics,
    regression_metrics,
)
from quantsearch.registry import Registry
from quantsearch.trial_attrs import RESERVED_ATTRS, RESERVED_PREFIXES, reserved_attr

if TYPE_CHECKING:
    from quantsearch.metrics.user import UserEvaluate

__all__ = [
    "METRICS",
    "REGRESSION_METRICS",
    "SPREAD_SUFFIX",
    "TRIAL_METRICS",
    "MetricSpec",
    "builtin_metric",
    "declare_user_metrics",
    "is_user_metric",
    "metric_names",
    "metric_spec",
    "metric_specs",
    "top_k_of",
    "user_metric_name_problem",
]

# What a quantized candidate is judged by: its quality, and what quantization buys. A search
# records these for every trial unless told otherwise; `quantize` compares them before/after.
TRIAL_METRICS = (
    "accuracy",
    "balanced_accuracy",
    "loss",
    "model_size_bits",
    "avg_weight_bits",
    "bitops",
)

Direction = Literal["maximize", "minimize"]
Kind = Literal["static", "data", "latency"]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric is and how it is computed.

    Attributes:
        name: the stable snake_case name (``flops``).
        label: what plots and tables call it (``model size``); the unit is added there.
        unit: what one unit of the value is (``FLOP/sample``, ``bit``, ``fraction``).
        direction: ``maximize`` or ``minimize``: which way is better.
        kind: ``static`` (read from the graph, microseconds), ``data`` (one forward pass over
            the validation data) or ``latency`` (timed runs; expensive).
        description: one line for ``quantsearch metrics``.
        compute: computes this metric's group (:mod:`quantsearch.metrics.groups`).
        deterministic: the same candidate and data always give the same value; ``False`` for
            timed metrics, which are noisy.
    """

    name: str
    label: str
    unit: str
    direction: Direction
    kind: Kind
    description: str
    compute: Compute
    deterministic: bool = True


# A noisy metric's spread (IQR of its repeated measurements) rides beside it as <name>_iqr.
SPREAD_SUFFIX = "_iqr"

METRICS: Registry[MetricSpec] = Registry("metric")

for _spec in (
    MetricSpec("accuracy", "accuracy", "fraction", "maximize", "data",
               "top-1 accuracy (micro): correct / samples", quality_metrics),
    MetricSpec("balanced_accuracy", "balanced accuracy", "fraction", "maximize", "data",
               "macro accuracy: mean per-class recall over the classes present in the labels",
               quality_metrics),
    MetricSpec("loss", "loss (cross-entropy)", "nat", "minimize", "data",
               "mean cross-entropy of the logits", quality_metrics),
    MetricSpec("top5_accuracy", "top5 accuracy", "fraction", "maximize", "data",
               "label among the 5 highest logits; any top<k>_accuracy works, e.g. top2_accuracy",
               quality_metrics),
    MetricSpec("mse", "MSE", "target unit²", "minimize", "data",
               "mean squared error of the output against float targets, over every output value",
               regression_metrics),
    MetricSpec("mae", "MAE", "target unit", "minimize", "data",
               "mean absolute error of the output against float targets, over every output value",
               regression_metrics),
    MetricSpec("params", "params", "count", "minimize", "static",
               "parameters (trainable and frozen)", param_metrics),
    MetricSpec("trainable_params", "trainable params", "count", "minimize", "static",
               "parameters with requires_grad", param_metrics),
    MetricSpec("buffers", "buffers", "count", "minimize", "static",
               "buffer elements (BatchNorm running statistics ...), not in model_size_bits",
               param_metrics),
    MetricSpec("model_size_bits", "model size", "bit", "minimize", "static",
               "parameter bits, each tensor at its own precision (float32 = 32)", param_metrics),
    MetricSpec("model_size_bytes", "model size bytes", "byte", "minimize", "static",
               "model_size_bits / 8", param_metrics),
    MetricSpec("buffer_bits", "buffer bits", "bit", "minimize", "static",
               "buffer bits at their dtype width", param_metrics),
    MetricSpec("avg_weight_bits", "average weight width", "bit", "minimize", "static",
               "MASE's average bitwidth: numel-weighted over linear/conv weights", param_metrics),
    MetricSpec("avg_param_bits", "avg param bits", "bit", "minimize", "static",
               "average bits over all parameters: model_size_bits / params", param_metrics),
    MetricSpec("macs", "macs", "MAC/sample", "minimize", "static",
               "multiply-accumulates of linear, conv, matmul and bmm layers", compute_cost_metrics),
    MetricSpec("flops", "flops", "FLOP/sample", "minimize", "static",
               "forward FLOPs: 2 x MACs + bias adds + per-element FLOPs of other ops",
               compute_cost_metrics),
    MetricSpec("flops_backward", "flops backward", "FLOP/sample", "minimize", "static",
               "backward FLOPs: gradients w.r.t. inputs and weights", compute_cost_metrics),
    MetricSpec("bitops", "BitOPs", "BitOP/sample", "minimize", "static",
               "sum over MAC layers of MACs x the bits of each operand: the integer-hardware cost proxy",
               compute_cost_metrics),
    MetricSpec("activation_bits", "activation bits", "bit/sample", "minimize", "static",
               "graph input + every new activation tensor (what backward keeps)", activation_metrics),
    MetricSpec("peak_activation_bits", "peak activation bits", "bit/sample", "minimize", "static",
               "largest input + output buffer of a single layer (layer-by-layer inference)",
               activation_metrics),
    MetricSpec("latency_ms", "latency ms", "ms", "minimize", "latency",
               "median wall time of one inference call on a batch (fake-quantized = float kernels)",
               latency_metrics, deterministic=False),
    MetricSpec("latency_per_sample_ms", "latency per sample ms", "ms/sample", "minimize",
               "latency", "latency_ms / latency batch size", latency_metrics, deterministic=False),
):  # fmt: skip
    METRICS.add(_spec.name, _spec)

# The metrics of float regression targets (mse, mae): a search that names one records no
# classification metrics by default (they need class labels).
REGRESSION_METRICS = tuple(n for n, s in METRICS.items() if s.compute is regression_metrics)

_TOP_K = re.compile(r"top([1-9][0-9]*)_accuracy")


def top_k_of(name: str) -> int | None:
    """``k`` for a ``top<k>_accuracy`` name, else ``None``.

    Example:
        >>> top_k_of("top3_accuracy"), top_k_of("accuracy")
        (3, None)
    """
    m = _TOP_K.fullmatch(name)
    return int(m.group(1)) if m else None


# Metrics of a user's evaluate function, by name: declared by the search that uses them.
_USER: dict[str, MetricSpec] = {}


def declare_user_metrics(
    evaluate: UserEvaluate | None, directions: Mapping[str, str]
) -> tuple[MetricSpec, ...]:
    """Make the metrics a user's ``evaluate`` function returns known by name, each with its
    direction, to every part of quantsearch that looks a metric up (:func:`metric_spec`).

    One call of ``evaluate`` gives all of them (kind ``data``: they need the validation data).
    A later declaration of a name replaces an earlier one, for the rest of the process; with
    ``evaluate`` ``None`` (directions read back from a run directory) only names not declared
    yet are added, so a function declared in this process is kept.

    Raises:
        MetricError: a name is a built-in metric or one the trial record uses
            (:func:`user_metric_name_problem`), or a direction is not maximize/minimize.

    Example:
        >>> specs = declare_user_metrics(None, {"max_abs_error": "minimize"})
        >>> metric_spec("max_abs_error").direction, is_user_metric("max_abs_error")
        ('minimize', True)
    """
    for name, direction in directions.items():
        problem = user_metric_name_problem(name)
        if problem is not None:
            raise MetricError(problem)
        if direction not in ("maximize", "minimize"):
            raise MetricError(
                f"direction of {name!r}: got {direction!r}, allowed: one of ['maximize', 'minimize']"
            )
    compute = UserMetrics(evaluate, tuple(directions))
    specs = tuple(
        MetricSpec(name, name, "value", direction, "data",  # type: ignore[arg-type]
                   "returned by the user's evaluate function", compute)
        for name, direction in directions.items()
    )  # fmt: skip
    _USER.update((s.name, s) for s in specs if evaluate is not None or s.name not in _USER)
    return specs


def user_metric_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a metric of a user's evaluate function, as ``"got ...,
    allowed: ..."``; ``None`` when it can. The one check of every path that declares one
    (``[metrics] directions``, an objective's direction, ``evaluate_directions``).

    A built-in metric has its own direction; a name the trial record uses
    (:mod:`quantsearch.trial_attrs`) would overwrite quantsearch's own record of every trial,
    since each metric is stored again under its own name.

    Example:
        >>> user_metric_name_problem("r2") is None
        True
        >>> print(user_metric_name_problem("qs"))
        got 'qs', a name the trial record uses, allowed: a name other than ['metrics', 'qs', 'quantsearch.worker'] that does not start with 'format.' or 'quantsearch.'
    """
    if builtin_metric(name):
        return (
            f"got {name!r}, a built-in metric, allowed: a name of your evaluate function's own "
            f"metric (built-in metrics have their direction)"
        )
    if reserved_attr(name):
        prefixes = " or ".join(repr(p) for p in RESERVED_PREFIXES)
        return (
            f"got {name!r}, a name the trial record uses, allowed: a name other than "
            f"{sorted(RESERVED_ATTRS)} that does not start with {prefixes}"
        )
    if not name.strip() or re.search(r"[\x00-\x1f\x7f]", name):  # a column, a table row
        return f"got {name!r}, allowed: a non-empty name without control characters"
    return None


def is_user_metric(name: str) -> bool:
    """``name`` is a declared metric of a user's evaluate function."""
    return name in _USER and not builtin_metric(name)


def builtin_metric(name: str) -> bool:
    """``name`` is a metric quantsearch itself computes (``top<k>_accuracy`` and a noisy
    metric's ``<name>_iqr`` included).

    Example:
        >>> builtin_metric("mse"), builtin_metric("top3_accuracy"), builtin_metric("r2")
        (True, True, False)
    """
    base = name.removesuffix(SPREAD_SUFFIX)
    return (
        name in METRICS
        or top_k_of(name) is not None
        or (base != name and base in METRICS and not METRICS.get(base).deterministic)
    )


def metric_spec(name: str) -> MetricSpec:
    """The spec of ``name`` (``top<k>_accuracy`` for any ``k >= 1``, a noisy metric's spread
    ``<name>_iqr`` and the declared metrics of a user's evaluate function included).

    Raises:
        MetricError: for an unknown name, listing the valid ones.
    """
    if name in METRICS:
        return METRICS.get(name)
    k = top_k_of(name)
    if k is not None:
        return MetricSpec(
            name,
            f"top{k} accuracy",
            "fraction",
            "maximize",
            "data",
            f"label among the {k} highest logits",
            quality_metrics,
        )
    base = name.removesuffix(SPREAD_SUFFIX)
    if base != name and base in METRICS and not METRICS.get(base).deterministic:
        b = METRICS.get(base)
        return MetricSpec(
            name, f"{b.label} spread (IQR)", b.unit, "minimize", b.kind,
            f"interquartile range of the repeated measurements of {base}", b.compute,
            deterministic=False,
        )  # fmt: skip
    if name in _USER:
        return _USER[name]
    close = difflib.get_close_matches(name, METRICS.names(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise MetricError(
        f"metric: got {name!r}, allowed: one of {METRICS.names()} or top<k>_accuracy{hint}"
    )


def metric_names() -> list[str]:
    """Every registered metric name, sorted."""
    return METRICS.names()


def metric_specs() -> list[MetricSpec]:
    """Every registered spec, sorted by name."""
    return [spec for _, spec in METRICS.items()]
