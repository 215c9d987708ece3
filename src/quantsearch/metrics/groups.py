"""The compute functions of the metric registry: each measures a group of metrics at once.

One analysis pass yields several metrics (``compute_cost`` gives MACs, FLOPs and BitOPs), and
every data metric comes from one forward pass, so a :class:`~quantsearch.metrics.MetricSpec`
names the function that computes its whole group; :func:`~quantsearch.metrics.compute_metrics`
calls each function it needs once and keeps the names asked for.

The registry is read without torch (``quantsearch metrics`` and ``quantsearch --help`` stay
fast), so each function imports the module that does the work, and torch with it, on first call.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from quantsearch.errors import MetricError

if TYPE_CHECKING:
    from torch import fx

    from quantsearch.data import Split
    from quantsearch.metrics.latency import LatencyOptions
    from quantsearch.metrics.quality import Quality
    from quantsearch.metrics.user import UserEvaluate
    from quantsearch.passes.analysis import ActivationCost, ComputeCost, ParamCost

__all__ = [
    "Compute",
    "MetricInputs",
    "ProbabilityOutputWarning",
    "UncountedOpsWarning",
    "UserMetrics",
    "activation_metrics",
    "activation_values",
    "compute_cost_metrics",
    "cost_values",
    "latency_metrics",
    "param_metrics",
    "param_values",
    "quality_metrics",
    "quality_values",
    "regression_metrics",
]


class UncountedOpsWarning(UserWarning):
    """Some nodes have no cost rule, so compute-cost totals leave them out."""


class ProbabilityOutputWarning(UserWarning):
    """The model returns probabilities (it ends in a softmax): ``loss`` reads them as logits."""


@dataclass(frozen=True)
class MetricInputs:
    """What a compute function may read: the candidate, the data and how to measure."""

    gm: fx.GraphModule
    data: Split | None = None
    batch_size: int = 1024  # evaluation batch size of data metrics
    latency: LatencyOptions | None = None  # None: LatencyOptions' defaults
    top_k: tuple[int, ...] = ()  # the k of every top<k>_accuracy asked for


Compute = Callable[[MetricInputs], dict[str, float]]


def compute_cost_metrics(x: MetricInputs) -> dict[str, float]:
    """MACs, FLOPs forward and backward and BitOPs, per sample."""
    from quantsearch.passes.analysis import compute_cost  # imports torch: deferred (see above)

    return cost_values(compute_cost(x.gm), stacklevel=4)


def cost_values(c: ComputeCost, *, stacklevel: int = 2) -> dict[str, float]:
    """The values of the ``compute_cost_metrics`` group from the totals ``c``, warning
    (:class:`UncountedOpsWarning`, ``stacklevel`` as ``warnings.warn``'s, from this function)
    when some node has no cost rule."""
    if c.uncounted:
        listed = ", ".join(f"{u.node} ({u.op_kind})" for u in c.uncounted)
        warnings.warn(
            f"macs/flops/bitops leave out {len(c.uncounted)} uncounted node(s): {listed}",
            UncountedOpsWarning,
            stacklevel=stacklevel,
        )
    b = c.batch_size
    return {
        "macs": c.macs / b,
        "flops": c.flops / b,
        "flops_backward": c.flops_backward / b,
        "bitops": c.bitops / b,
    }


def param_metrics(x: MetricInputs) -> dict[str, float]:
    """Parameter and buffer counts and their bits, for the whole model."""
    from quantsearch.passes.analysis import param_cost  # imports torch: deferred (see above)

    return param_values(param_cost(x.gm))


def param_values(p: ParamCost) -> dict[str, float]:
    """The values of the ``param_metrics`` group from the totals ``p``."""
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


def activation_metrics(x: MetricInputs) -> dict[str, float]:
    """Activation bits kept for backward and the peak of layer-by-layer inference, per sample."""
    from quantsearch.passes.analysis import activation_cost  # imports torch: deferred (see above)

    return activation_values(activation_cost(x.gm))


def activation_values(a: ActivationCost) -> dict[str, float]:
    """The values of the ``activation_metrics`` group from the totals ``a``."""
    return {
        "activation_bits": a.activation_bits / a.batch_size,
        "peak_activation_bits": a.peak_activation_bits / a.batch_size,
    }


def quality_metrics(x: MetricInputs) -> dict[str, float]:
    """Every quality metric, from one forward pass over ``x.data``."""
    from quantsearch.metrics.quality import evaluate  # imports torch: deferred (see above)

    assert x.data is not None  # compute_metrics checked it
    softmax = softmax_output(x.gm)
    if softmax is not None:
        warnings.warn(
            f"loss: the model returns probabilities (its output is node {softmax}, a softmax), "
            f"and loss takes its outputs as logits: -log softmax(p)[label], not the model's "
            f"cross-entropy -log p[label]; return the logits or log_softmax for that",
            ProbabilityOutputWarning,
            stacklevel=4,
        )
    return quality_values(evaluate(x.gm, x.data, batch_size=x.batch_size, top_k=x.top_k))


# ops an output may pass through after its softmax and still be the softmax's values
_PASS_THROUGH = ("dropout", "identity", "flatten", "view", "reshape", "contiguous", "clone")


def softmax_output(gm: fx.GraphModule) -> str | None:
    """The name of the softmax node whose probabilities the graph returns (along the classes
    of a ``(samples, classes)`` output, through data movement only), else ``None``.

    Example:
        >>> import torch
        >>> from quantsearch.graph import trace
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Softmax(dim=1))
        >>> softmax_output(trace(net, torch.ones(2, 4)))
        '_1'
    """
    from quantsearch.graph import info  # imports torch: deferred (see above)

    out = next(n for n in reversed(gm.graph.nodes) if n.op == "output")
    node = out.args[0]
    while hasattr(node, "op") and info(node).op_kind in _PASS_THROUGH:
        node = node.args[0]
    if not hasattr(node, "op") or info(node).op_kind != "softmax":
        return None
    mod = gm.get_submodule(str(node.target)) if node.op == "call_module" else None
    dim = getattr(mod, "dim", None) if mod is not None else None
    if mod is None:
        dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    shape = info(node).outputs[0].shape
    return str(node.name) if len(shape) == 2 and dim in (None, 1, -1) else None


def quality_values(q: Quality) -> dict[str, float]:
    """The metric values of ``q`` by name, as :func:`quality_metrics` reports them (a
    population's configs too)."""
    values = {"accuracy": q.accuracy, "balanced_accuracy": q.balanced_accuracy, "loss": q.loss}
    values.update({f"top{k}_accuracy": v for k, v in q.top_k.items()})
    return values


def regression_metrics(x: MetricInputs) -> dict[str, float]:
    """``mse`` and ``mae`` of the output against float targets, from one forward pass."""
    from quantsearch.metrics.regression import regression_errors  # imports torch: deferred

    assert x.data is not None  # compute_metrics checked it
    return regression_errors(x.gm, x.data, batch_size=x.batch_size)


@dataclass(frozen=True, eq=False)
class UserMetrics:
    """The compute function of the metrics a user's ``evaluate`` function returns: one call
    gives all of ``names``. ``evaluate`` is ``None`` where only their directions are known
    (a run directory read back in another process).

    Compared and hashed by identity (``eq=False``): ``compute_metrics`` keys its groups by
    compute function, and a user's callable object need not be hashable."""

    evaluate: UserEvaluate | None
    names: tuple[str, ...]

    def __call__(self, x: MetricInputs) -> dict[str, float]:
        from quantsearch.metrics.user import run_user_evaluate  # imports torch: deferred

        if self.evaluate is None:
            raise MetricError(
                f"metrics {list(self.names)} come from a user evaluate function, which this "
                f"process has not been given"
            )
        assert x.data is not None  # compute_metrics checked it
        return run_user_evaluate(self.evaluate, self.names, x.gm, x.data, x.batch_size)


def latency_metrics(x: MetricInputs) -> dict[str, float]:
    """Median time of one call, and that per sample (timed: differs from run to run)."""
    from quantsearch.metrics.latency import (  # imports torch: deferred (see above)
        LatencyOptions,
        latency_inputs,
        measure_latency,
    )

    opts = x.latency or LatencyOptions()
    r = measure_latency(
        x.gm,
        latency_inputs(x.gm, opts.batch_size, x.data),
        warmup=opts.warmup,
        repeats=opts.repeats,
        device=opts.device,
        threads=opts.threads,
    )
    return r.metrics()
