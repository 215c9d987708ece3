"""``compute_metrics``: the one call a search trial makes to measure a candidate.

It computes only what is asked: each metric's spec names the function that computes its group
(:mod:`quantsearch.metrics.groups`), and each such function runs at most once per call. Static
metrics read the graph (tens of microseconds on a small graph), data metrics share one forward
pass over the validation data, latency is timed only when named. Nothing is cached between
calls: each trial's graph is new, and the analysis passes rewrite the per-node facts they read,
so a re-annotated graph never reports stale numbers. (A search, which prices many configs of
one model, keeps each node's entries across configs instead:
:class:`quantsearch.metrics.static.StaticMetrics`, equal to this to the last bit.)
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import fx

from quantsearch.data import Split
from quantsearch.errors import MetricError
from quantsearch.metrics.groups import MetricInputs
from quantsearch.metrics.latency import LatencyOptions
from quantsearch.metrics.specs import SPREAD_SUFFIX, metric_spec, top_k_of

__all__ = ["compute_metrics"]


def compute_metrics(
    gm: fx.GraphModule,
    names: Sequence[str],
    *,
    data: Split | None = None,
    batch_size: int = 1024,
    latency: LatencyOptions | None = None,
) -> dict[str, float]:
    """Compute the named metrics of one candidate model.

    Args:
        gm: a graph built by :func:`quantsearch.graph.trace` (possibly quantized). Static
            metrics read its per-node records; data and latency metrics run it.
        names: metric names (see :func:`quantsearch.metrics.metric_names`; any
            ``top<k>_accuracy``); duplicates are computed once.
        data: the validation samples for data metrics (``split.head(n)`` to evaluate ``n``);
            also the latency inputs when given.
        batch_size: evaluation batch size for data metrics.
        latency: how to time ``latency_ms`` (``None``: :class:`LatencyOptions` defaults).

    Returns:
        ``{name: value}`` in the order asked. Compute and activation metrics are per sample.
        A noisy metric (``MetricSpec.deterministic`` false: ``latency_ms``) is the median of
        repeated runs, followed by its spread ``<name>_iqr`` (interquartile range, same unit).

    Raises:
        MetricError: naming an unknown metric and listing the valid ones, or when a data
            metric is asked without ``data``.

    Example:
        >>> import torch
        >>> from quantsearch.graph import trace
        >>> gm = trace(torch.nn.Linear(16, 5), torch.ones(8, 16))
        >>> compute_metrics(gm, ["macs", "params", "model_size_bits"])
        {'macs': 80.0, 'params': 85.0, 'model_size_bits': 2720.0}
    """
    if isinstance(names, str):
        raise MetricError(f"names must be a sequence of metric names, not a string (got {names!r})")
    wanted = list(dict.fromkeys(names))
    specs = [metric_spec(n) for n in wanted]
    static = sorted(s.name for s in specs if s.kind == "static")
    if static and not isinstance(gm, fx.GraphModule):
        raise MetricError(
            f"static metrics {static} need a graph traced by quantsearch.trace "
            f"(got {type(gm).__name__})"
        )
    data_names = [s.name for s in specs if s.kind == "data"]
    if data_names and data is None:
        raise MetricError(f"data is required for metrics {data_names} (got data=None)")
    if latency is not None and latency.batch_size < 1 and any(s.kind == "latency" for s in specs):
        raise MetricError(f"latency batch_size: got {latency.batch_size}, allowed: an integer >= 1")
    top_k = tuple(k for k in (top_k_of(n) for n in data_names) if k is not None)
    inputs = MetricInputs(gm, data, batch_size, latency, top_k)
    values: dict[str, float] = {}
    for compute in dict.fromkeys(s.compute for s in specs):  # each group once, in order asked
        values.update(compute(inputs))
    out = {n: values[n] for n in wanted}
    for s in specs:  # a noisy metric comes with its spread (IQR of its repeats) as <name>_iqr
        if not s.deterministic and f"{s.name}{SPREAD_SUFFIX}" in values:
            out[f"{s.name}{SPREAD_SUFFIX}"] = values[f"{s.name}{SPREAD_SUFFIX}"]
    return out
