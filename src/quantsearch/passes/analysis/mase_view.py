"""MASE's per-module statistics, for users comparing figures with MASE's ``flop_estimator``.

For each supported node this gives MASE's five keys, ``total_parameters``, ``computations``,
``backward_computations``, ``input_buffer_size`` and ``output_buffer_size``, with MASE's
formulas (``chop/passes/graph/analysis/flop_estimator/calculator/calc_modules.py``), which are
*not* quantsearch's convention (:mod:`quantsearch.passes.analysis.cost_rules`):

* a Linear "computation" is one MAC per weight per row: ``weight.numel x rows`` (no bias, not
  x 2); backward = 2 x that. Its ``total_parameters`` leaves out the bias.
* Conv2d: ``output.numel x kh x kw x C_in`` (groups ignored); backward =
  ``input.numel x kh x kw x C_in x 2``.
* BatchNorm: ``4 x input.numel`` both ways and ``2 x num_features`` parameters. MASE applied this
  to BatchNorm2d only and skipped BatchNorm1d; this view gives BatchNorm1d the same formula.
* ReLU/ReLU6: ``input.numel``; LayerNorm: ``5 x input.numel``, 0 parameters; max/avg pool 2d:
  ``output.numel x window`` forward, ``input.numel x window`` backward; adaptive avg pool 2d:
  ``input.numel``; Dropout: 0; Embedding: 0 computations and
  ``embedding_dim x input.numel`` "parameters"; the ``add`` function: ``input.numel``.
* buffer sizes are elements of the whole batch's first input and output. (MASE's profiler passed
  one sample, ``args[0][0]``, and so asserted batch size 1; this view uses the whole batch.)

Everything else is unsupported in MASE; such nodes are listed in :attr:`MaseStats.unsupported`
(MASE printed a line and carried on).

Example:
    >>> import torch
    >>> from quantsearch.graph import trace
    >>> from quantsearch.models import build_model
    >>> s = mase_stats(trace(build_model("jsc-tiny"), torch.ones(8, 16)))
    >>> {k: v["computations"] for k, v in s.stats.items()}
    {'seq_blocks.0': 512, 'seq_blocks.1': 128, 'seq_blocks.2': 640, 'seq_blocks.3': 40}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import fx

from quantsearch.graph import NodeInfo, info
from quantsearch.passes.analysis.flops import UncountedOp

__all__ = ["MASE_KEYS", "MaseStats", "mase_stats", "mase_view"]

MASE_KEYS = (
    "total_parameters",
    "computations",
    "backward_computations",
    "input_buffer_size",
    "output_buffer_size",
)

_Stat = dict[str, int]


def _stat(params: int, comp: int, bwd: int, inp: int, out: int) -> _Stat:
    return dict(zip(MASE_KEYS, (params, comp, bwd, inp, out), strict=True))


def _window(mod: Any) -> int:
    k = mod.kernel_size
    return int(k) ** 2 if isinstance(k, int) else int(k[0]) * int(k[1])


def _mase_module(kind: str, mod: Any, ni: NodeInfo) -> _Stat | None:
    if kind in ("conv2d", "linear") and getattr(mod, "weight", None) is None:
        return None  # a function-form layer made a module: a function call to MASE
    i = ni.inputs[0].numel
    o = ni.outputs[0].numel
    if kind == "adaptive_avg_pool2d":
        return _stat(0, i, i, i, o)
    if kind == "embedding":
        return _stat(int(mod.embedding_dim) * i, 0, 0, 0, 0)
    if kind in ("avg_pool2d", "max_pool2d"):
        w = _window(mod)
        return _stat(0, o * w, i * w, i, o)
    if kind == "conv2d":
        w = mod.kernel_size[0] * mod.kernel_size[1] * ni.inputs[0].shape[1]
        return _stat(mod.weight.numel(), o * w, i * w * 2, i, o)
    if kind == "dropout":
        return _stat(0, 0, 0, i, o)
    if kind == "linear":
        rows = i // ni.inputs[0].shape[-1]
        comp = mod.weight.numel() * rows
        return _stat(mod.weight.numel(), comp, 2 * comp, i, o)
    if kind in ("relu", "relu6"):
        return _stat(0, i, i, i, o)
    if kind == "layer_norm":
        return _stat(0, 5 * i, 5 * i, i, o)
    if kind in ("batch_norm1d", "batch_norm2d"):
        return _stat(2 * int(mod.num_features), 4 * i, 4 * i, i, o)
    return None


_FUNCS: dict[str, Callable[[NodeInfo], _Stat]] = {
    "add": lambda ni: _stat(0, ni.inputs[0].numel, ni.inputs[0].numel, ni.inputs[0].numel,
                            ni.outputs[0].numel),
}  # fmt: skip


@dataclass(frozen=True)
class MaseStats:
    """MASE's stats keyed as MASE keys them (module path; node name for functions)."""

    stats: dict[str, dict[str, int]]
    unsupported: tuple[UncountedOp, ...]


def mase_view(gm: fx.GraphModule) -> fx.GraphModule:
    """Annotate op nodes with ``cost["mase"]``: MASE's five statistics, or ``None`` where MASE
    has no formula.

    Args:
        gm: a graph built by :func:`quantsearch.graph.trace`.

    Returns:
        ``gm``, for chaining.
    """
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op not in ("call_module", "call_function", "call_method"):
            continue
        ni = info(node)
        stat: _Stat | None = None
        if ni.inputs and ni.outputs:
            if node.op == "call_module" and ni.op_kind not in _FUNCS:
                stat = _mase_module(ni.op_kind, modules[str(node.target)], ni)
            elif node.op != "call_method" and ni.op_kind in _FUNCS:
                # also a quantized ``add``, which the quantize pass turns into a module
                stat = _FUNCS[ni.op_kind](ni)
        ni.cost["mase"] = stat
    return gm


def mase_stats(gm: fx.GraphModule) -> MaseStats:
    """Run :func:`mase_view` and collect it as MASE's ``{name: {key: value}}`` dictionary."""
    mase_view(gm)
    stats: dict[str, dict[str, int]] = {}
    unsupported = []
    for node in gm.graph.nodes:
        if node.op not in ("call_module", "call_function", "call_method"):
            continue
        ni = info(node)
        stat = ni.cost["mase"]
        if stat is None:
            unsupported.append(UncountedOp(ni.name, ni.op_kind, "no formula in MASE"))
        else:
            stats[ni.target if node.op == "call_module" else ni.name] = dict(stat)
    return MaseStats(stats, tuple(unsupported))
