"""Activation memory: the input and output buffers of every node, in elements and bits.

A node's input buffer is every activation tensor it reads (weights fetched by ``get_attr`` are
parameters, not activations; a tensor read twice, as in ``x + x``, is one buffer); its output
buffer is every tensor it returns. Bits use the node's ``data_in`` / ``data_out`` precision when
recorded, else the tensor's dtype width.

Totals, for the traced batch:

* ``activation_bits``: the graph input plus every output that is a new tensor: the memory to keep
  all activations, as training's backward pass does. Views and eval-mode no-ops (flatten,
  reshape, view, dropout, identity, getitem ...) alias their input and add nothing.
* ``peak_activation_bits``: the largest ``in + out`` of any single node: the working set of
  layer-by-layer inference.

Example:
    >>> import torch
    >>> from quantsearch.graph import trace
    >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(16, 5), torch.nn.ReLU()), torch.ones(8, 16))
    >>> a = activation_cost(gm)
    >>> a.activation_elems, a.activation_bits, a.peak_activation_bits
    (208, 6656.0, 5376.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import fx

from quantsearch.graph import NodeInfo, info
from quantsearch.passes.analysis.tensors import role_storage, traced_batch_size

__all__ = [
    "ALIAS_KINDS",
    "BUFFER_KEYS",
    "ActivationCost",
    "activation_cost",
    "count_buffers",
    "count_node_buffers",
    "total_activation_cost",
]

BUFFER_KEYS = ("in_elems", "in_bits", "out_elems", "out_bits")
# Ops whose output aliases their input (or, in eval mode, is their input).
ALIAS_KINDS = frozenset(
    {"flatten", "reshape", "view", "dropout", "identity", "getitem", "getattr", "permute",
     "transpose", "t", "unsqueeze", "squeeze", "expand", "chunk", "split"}
)  # fmt: skip
_NODES = ("placeholder", "call_module", "call_function", "call_method")


@dataclass(frozen=True)
class ActivationCost:
    """Activation-memory totals for the traced batch of ``batch_size`` samples."""

    activation_elems: int
    activation_bits: float
    peak_activation_elems: int
    peak_activation_bits: float
    peak_node: str | None
    batch_size: int


def count_buffers(gm: fx.GraphModule) -> fx.GraphModule:
    """Annotate graph inputs and op nodes with ``in_elems``, ``in_bits``, ``out_elems`` and
    ``out_bits`` (``NodeInfo.cost``; the graph is unchanged).

    Args:
        gm: a graph built by :func:`quantsearch.graph.trace`.

    Returns:
        ``gm``, for chaining.
    """
    for node in gm.graph.nodes:
        if node.op in _NODES:
            count_node_buffers(node)
    return gm


def count_node_buffers(node: fx.Node) -> None:
    """:func:`count_buffers` of one graph input or op node; its entries read its own record
    and its inputs' traced tensors only."""
    ni = info(node)
    in_elems, in_bits = 0, 0.0
    for src in node.all_input_nodes:
        if src.op == "get_attr":
            continue
        for t in info(src).outputs:
            in_elems += t.numel
            in_bits += role_storage(ni, "data_in", t.dtype, t.shape)
    out_elems = sum(t.numel for t in ni.outputs)
    out_bits = sum(role_storage(ni, "data_out", t.dtype, t.shape) for t in ni.outputs)
    ni.cost.update(in_elems=in_elems, in_bits=in_bits, out_elems=out_elems, out_bits=out_bits)


def activation_cost(gm: fx.GraphModule) -> ActivationCost:
    """Run :func:`count_buffers` and total it (see the module docstring for the definitions)."""
    count_buffers(gm)
    nodes = (info(n) for n in gm.graph.nodes if n.op in _NODES)
    return total_activation_cost(((ni, ni.cost) for ni in nodes), traced_batch_size(gm))


def total_activation_cost(
    rows: Iterable[tuple[NodeInfo, Mapping[str, Any]]], batch_size: int
) -> ActivationCost:
    """The totals of :func:`count_buffers`'s entries: ``rows`` holds, for each graph input and
    op node in graph order, its record (name, op, op kind) and its ``cost`` entries (see
    :func:`~quantsearch.passes.analysis.flops.total_compute_cost` for why it is apart)."""
    elems, bits = 0, 0.0
    peak_elems, peak_bits, peak_node = 0, 0.0, None
    for ni, c in rows:
        if ni.op_kind not in ALIAS_KINDS:
            elems += c["out_elems"]
            bits += c["out_bits"]
        if ni.op != "placeholder" and c["in_bits"] + c["out_bits"] > peak_bits:
            peak_bits = c["in_bits"] + c["out_bits"]
            peak_elems = c["in_elems"] + c["out_elems"]
            peak_node = ni.name
    return ActivationCost(elems, bits, peak_elems, peak_bits, peak_node, batch_size)
