"""The names a trial's record takes among its Optuna user attributes.

:class:`quantsearch.search.trial.TrialInfo` and the workers' liveness marks write these; a
user's evaluate function's metric is stored beside them under its own name, so it may not take
one of them (:func:`quantsearch.metrics.specs.user_metric_name_problem` refuses it). They live
here, below both the metrics and the search layer, so that both read the one list.
"""

from __future__ import annotations

__all__ = [
    "FORMAT_ATTR",
    "INFO_ATTR",
    "METRICS_ATTR",
    "RESERVED_ATTRS",
    "RESERVED_PREFIXES",
    "WORKER_ATTR",
    "reserved_attr",
]

INFO_ATTR = "qs"  # the bookkeeping dict
METRICS_ATTR = "metrics"  # every measured metric, as one dict
FORMAT_ATTR = "format."  # prefix of the per-node formats an "auto" choice resolved to
WORKER_PREFIX = "quantsearch."  # quantsearch's own marks
WORKER_ATTR = WORKER_PREFIX + "worker"  # "<trial number>@<host>:<pid>:<start>"

RESERVED_ATTRS = frozenset({INFO_ATTR, METRICS_ATTR, WORKER_ATTR})  # a metric may not take these
RESERVED_PREFIXES = (FORMAT_ATTR, WORKER_PREFIX)  # ... nor a name starting with these


def reserved_attr(name: str) -> bool:
    """``name`` is, or may become, one of the trial record's own user attributes.

    Example:
        >>> reserved_attr("qs"), reserved_attr("format.fc1.weight"), reserved_attr("r2")
        (True, True, False)
    """
    return name in RESERVED_ATTRS or name.startswith(RESERVED_PREFIXES)
