"""Metrics with stable names: what a search optimises and constrains, and ``summary`` prints.

:func:`compute_metrics` is the one entry point a search trial calls. The registry
:data:`METRICS` maps each name to a :class:`MetricSpec` (unit, direction, kind); ``quantsearch
metrics`` lists them. Relative metrics (against a baseline) are the search's business, not
this package's.

The registry imports no torch; the modules that compute are imported on first use, so
``quantsearch metrics`` and ``quantsearch --help`` stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from quantsearch.metrics.groups import MetricInputs, ProbabilityOutputWarning, UncountedOpsWarning
from quantsearch.metrics.specs import (
    METRICS,
    TRIAL_METRICS,
    MetricSpec,
    builtin_metric,
    declare_user_metrics,
    is_user_metric,
    metric_names,
    metric_spec,
    metric_specs,
    top_k_of,
)

if TYPE_CHECKING:
    from quantsearch.metrics.compute import compute_metrics
    from quantsearch.metrics.latency import (
        LatencyOptions,
        LatencyResult,
        latency_inputs,
        measure_latency,
    )
    from quantsearch.metrics.quality import (
        Quality,
        accuracy,
        balanced_accuracy,
        evaluate,
        top_k_accuracy,
    )

__all__ = [
    "METRICS",
    "TRIAL_METRICS",
    "LatencyOptions",
    "LatencyResult",
    "MetricInputs",
    "MetricSpec",
    "ProbabilityOutputWarning",
    "Quality",
    "UncountedOpsWarning",
    "accuracy",
    "balanced_accuracy",
    "builtin_metric",
    "compute_metrics",
    "declare_user_metrics",
    "evaluate",
    "is_user_metric",
    "latency_inputs",
    "measure_latency",
    "metric_names",
    "metric_spec",
    "metric_specs",
    "top_k_accuracy",
    "top_k_of",
]

# Each imports torch: loaded on first use (see above).
_LAZY = {
    "compute_metrics": "compute",
    "latency_inputs": "latency",
    "LatencyOptions": "latency",
    "LatencyResult": "latency",
    "measure_latency": "latency",
    "Quality": "quality",
    "accuracy": "quality",
    "balanced_accuracy": "quality",
    "evaluate": "quality",
    "top_k_accuracy": "quality",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"quantsearch.metrics.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'quantsearch.metrics' has no attribute {name!r}")
