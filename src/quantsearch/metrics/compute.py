"""``compute_metrics``: the one call a search trial makes to measure a candidate.

It computes only what is asked: static metrics read the graph (tens of microseconds on a small
graph), data metrics share one forward pass over the validation data, latency is timed only
when named. Nothing is cached between calls: each trial's graph is new, and the analysis passes
rewrite the per-node facts they read, so a re-annotated graph never reports stale numbers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import fx

from quantsearch.data import Split
from quantsearch.errors import MetricError
from quantsearch.graph import META_KEY, NodeInfo
from quantsearch.metrics.latency import LatencyOptions, measure_latency
from quantsearch.metrics.quality import evaluate
from quantsearch.metrics.specs import metric_spec, top_k_of
from quantsearch.passes.analysis import activation_cost, compute_cost, param_cost

__all__ = ["UncountedOpsWarning", "compute_metrics", "latency_inputs"]


class UncountedOpsWarning(UserWarning):
    """Some nodes have no cost rule, so compute-cost totals leave them out."""


def _compute(gm: fx.GraphModule) -> dict[str, float]:
    c = compute_cost(gm)
    if c.uncounted:
        listed = ", ".join(f"{u.node} ({u.op_kind})" for u in c.uncounted)
        warnings.warn(
            f"macs/flops/bitops leave out {len(c.uncounted)} uncounted node(s): {listed}",
            UncountedOpsWarning,
            stacklevel=3,
        )
    b = c.batch_size
    return {
        "macs": c.macs / b,
        "flops": c.flops / b,
        "flops_backward": c.flops_backward / b,
        "bitops": c.bitops / b,
    }


def _params(gm: fx.GraphModule) -> dict[str, float]:
    p = param_cost(gm)
    return {
        "params": float(p.params),
        "trainable_params": float(p.trainable_params),
        "buffers": float(p.buffers),
        "model_size_bits": p.model_size_bits,
        "model_size_bytes": p.model_size_bytes,
        "buffer_bits": p.buffer_bits,
        "avg_weight_bits": p.avg_weight_bits,
        "avg_param_bits": p.avg_param_bits,
    }


def _activations(gm: fx.GraphModule) -> dict[str, float]:
    a = activation_cost(gm)
    return {
        "activation_bits": a.activation_bits / a.batch_size,
        "peak_activation_bits": a.peak_activation_bits / a.batch_size,
    }


_PARAM_NAMES = (
    "params", "trainable_params", "buffers", "model_size_bits", "model_size_bytes", "buffer_bits",
    "avg_weight_bits", "avg_param_bits",
)  # fmt: skip

# Each static group: the names it yields and the analysis that yields them all at once.
_STATIC: tuple[tuple[frozenset[str], Callable[[fx.GraphModule], dict[str, float]]], ...] = (
    (frozenset({"macs", "flops", "flops_backward", "bitops"}), _compute),
    (frozenset(_PARAM_NAMES), _params),
    (frozenset({"activation_bits", "peak_activation_bits"}), _activations),
)


def latency_inputs(
    gm: fx.GraphModule, batch_size: int, data: Split | None = None
) -> tuple[torch.Tensor, ...]:
    """Inputs for timing: the first ``batch_size`` samples of ``data``, else seeded random
    tensors shaped like the traced inputs with the batch dimension set to ``batch_size``."""
    if data is not None:
        return (data.x[:batch_size],)
    gen = torch.Generator().manual_seed(0)
    xs = []
    for node in gm.graph.nodes:
        if node.op != "placeholder":
            continue
        ni = node.meta.get(META_KEY)
        if not isinstance(ni, NodeInfo) or not ni.outputs:
            raise MetricError(
                f"latency_ms needs data or a graph traced by quantsearch.trace (input {node.name!r} "
                "has no recorded shape)"
            )
        meta = ni.outputs[0]
        shape = (batch_size, *meta.shape[1:])
        dtype = getattr(torch, meta.dtype)
        if dtype.is_floating_point:
            xs.append(torch.randn(shape, generator=gen).to(dtype))
        else:
            xs.append(torch.zeros(shape, dtype=dtype))
    return tuple(xs)


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
    values: dict[str, float] = {}
    static = {s.name for s in specs if s.kind == "static"}
    if static:
        if not isinstance(gm, fx.GraphModule):
            raise MetricError(
                f"static metrics {sorted(static)} need a graph traced by quantsearch.trace "
                f"(got {type(gm).__name__})"
            )
        for group, fn in _STATIC:
            if static & group:
                values.update(fn(gm))
    data_names = [s.name for s in specs if s.kind == "data"]
    if data_names:
        if data is None:
            raise MetricError(f"data is required for metrics {data_names} (got data=None)")
        ks = [k for k in (top_k_of(n) for n in data_names) if k is not None]
        q = evaluate(gm, data, batch_size=batch_size, top_k=ks)
        values["accuracy"] = q.accuracy
        values["balanced_accuracy"] = q.balanced_accuracy
        values["loss"] = q.loss
        for k, v in q.top_k.items():
            values[f"top{k}_accuracy"] = v
    if any(s.kind == "latency" for s in specs):
        opts = latency or LatencyOptions()
        if opts.batch_size < 1:
            raise MetricError(f"latency batch_size must be >= 1 (got {opts.batch_size})")
        r = measure_latency(
            gm,
            latency_inputs(gm, opts.batch_size, data),
            warmup=opts.warmup,
            repeats=opts.repeats,
            device=opts.device,
            threads=opts.threads,
        )
        values["latency_ms"] = r.median_ms
        values["latency_per_sample_ms"] = r.per_sample_ms
    return {n: values[n] for n in wanted}
