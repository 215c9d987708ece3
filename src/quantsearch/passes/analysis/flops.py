"""The FLOP-counting pass: MACs, FLOPs (forward and backward) and BitOPs per node of a traced
graph, and their totals.

The counting convention and every op's formula are in
:mod:`quantsearch.passes.analysis.cost_rules`, stated once.

Example:
    >>> import torch
    >>> from quantsearch.graph import trace
    >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(16, 5), torch.nn.ReLU()), torch.ones(8, 16))
    >>> c = compute_cost(gm)
    >>> c.macs, c.flops, c.flops_backward, c.bitops
    (640, 1360, 2640, 655360.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import fx, nn

from quantsearch.graph import NodeInfo, info
from quantsearch.passes.analysis.cost_rules import COST_RULES, OpArgs, OpCost
from quantsearch.passes.analysis.tensors import traced_batch_size

__all__ = [
    "COST_KEYS",
    "ComputeCost",
    "UncountedOp",
    "compute_cost",
    "count_flops",
    "count_node_flops",
    "total_compute_cost",
]

COST_KEYS = ("macs", "flops", "flops_backward", "bitops")
_CALLS = ("call_module", "call_function", "call_method")


@dataclass(frozen=True)
class UncountedOp:
    """A node the counter has no rule for (or whose rule could not read its arguments)."""

    node: str
    op_kind: str
    reason: str


@dataclass(frozen=True)
class ComputeCost:
    """Totals over a graph, for the traced batch of ``batch_size`` samples."""

    macs: int
    flops: int
    flops_backward: int
    bitops: float
    batch_size: int
    uncounted: tuple[UncountedOp, ...] = ()


def count_flops(gm: fx.GraphModule) -> fx.GraphModule:
    """Annotate each op node's ``NodeInfo.cost`` with ``macs``, ``flops``, ``flops_backward``
    and ``bitops`` for the traced batch (in place on the metadata; the graph is unchanged).

    A node without a rule gets ``None`` for all four and ``cost["uncounted"]`` = the reason.

    Args:
        gm: a graph built by :func:`quantsearch.graph.trace`.

    Returns:
        ``gm``, for chaining.
    """
    modules = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op in _CALLS:
            count_node_flops(node, modules)
    return gm


def count_node_flops(node: fx.Node, modules: Mapping[str, nn.Module]) -> None:
    """:func:`count_flops` of one call node (``modules``: its graph's ``named_modules()``);
    the node's entries read its own record and its arguments' traced tensors only."""
    ni = info(node)
    ni.cost.pop("uncounted", None)
    rule = COST_RULES.get(ni.op_kind) if ni.op_kind in COST_RULES else None
    reason = f"no cost rule for op kind {ni.op_kind!r}"
    cost: OpCost | None = None
    if node.op != "call_module" and not ni.inputs and not ni.outputs:
        # Python arithmetic on sizes (``c // 2`` of ``n, c, h, w = x.shape``): fx records it
        # as a node, but it reads and makes no tensor; its rule would read an output tensor.
        cost = OpCost()
    elif rule is not None:
        mod = modules.get(str(node.target)) if node.op == "call_module" else None
        try:
            cost = rule(OpArgs(node, ni, mod))
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            reason = f"{ni.op_kind} rule could not read the node: {type(exc).__name__}: {exc}"
    if cost is None:
        ni.cost.update(dict.fromkeys(COST_KEYS))
        ni.cost["uncounted"] = reason
    else:
        ni.cost["macs"] = cost.macs
        ni.cost["flops"] = cost.flops
        ni.cost["flops_backward"] = cost.flops_backward
        ni.cost["bitops"] = cost.bitops


def compute_cost(gm: fx.GraphModule) -> ComputeCost:
    """Run :func:`count_flops` and total it over the graph.

    Returns:
        Totals for the traced batch, with every node the counter could not price in
        ``uncounted`` (its FLOPs are missing from the totals, so check that list).
    """
    count_flops(gm)
    calls = (info(n) for n in gm.graph.nodes if n.op in _CALLS)
    return total_compute_cost(((ni, ni.cost) for ni in calls), traced_batch_size(gm))


def total_compute_cost(
    rows: Iterable[tuple[NodeInfo, Mapping[str, Any]]], batch_size: int
) -> ComputeCost:
    """The totals of :func:`count_flops`'s entries: ``rows`` holds, for each call node in
    graph order, its record (name and op kind) and its ``cost`` entries.

    :func:`compute_cost` totals a graph's own records with it; a memo of per-node entries
    (:class:`quantsearch.metrics.static.StaticMetrics`) totals its entries with it, in the
    same order, so both give the same numbers to the last bit.
    """
    macs = flops = bwd = 0
    bitops = 0.0
    uncounted = []
    for ni, c in rows:
        if "uncounted" in c:
            uncounted.append(UncountedOp(ni.name, ni.op_kind, str(c["uncounted"])))
            continue
        macs += c["macs"]
        flops += c["flops"]
        bwd += c["flops_backward"]
        bitops += c["bitops"]
    return ComputeCost(macs, flops, bwd, bitops, batch_size, tuple(uncounted))
