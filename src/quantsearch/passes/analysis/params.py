"""Parameters, buffers, bit-true model size and average bitwidth per node of a traced graph.

Every parameter tensor costs ``numel x bits`` at its own precision: a ``weight`` or ``bias`` of a
node whose ``NodeInfo.precision`` has that role costs the format's ``storage_bits`` of its shape
(``numel x bits_per_element``, save that a block format counts the blocks the shape really has:
a row's last, shorter block stores a whole exponent); any other tensor costs its dtype's width
(32 for float32). A parameter fetched by ``get_attr`` (a user's
``torch.matmul(x, self.w)``, ``x + self.b``, ``F.linear(x, self.w)``) costs the format its
consumer applies to it (:func:`~quantsearch.passes.analysis.tensors.arg_bits`: ``data_in`` of a
quantized ``matmul``, ``weight`` of a function-form ``linear``), followed through views such as
``self.w.t()``; one stored copy serves every consumer, so with several it costs the widest. ``element_size()`` is never used: a
fake-quantized weight is still a float32 tensor in memory, but it costs its format's width.

Each tensor is counted once, at the first node that uses it (a module called twice or a tied
weight is not double counted, nor are the copies the quantize pass makes of one: it records
each copied parameter's original, :data:`~quantsearch.graph.PARAM_ORIGINS`), at the widest
format any of its users applies to it: one stored tensor serves them all, whatever their order
(a Linear called twice under ``fixed(4,2)`` then ``fixed(8,2)`` stores 8 bits a weight, as under
the reverse order; an embedding table tied to a quantized output layer stays at its float
width while the embedding reads it in float). A module's parameter read in forward as well
(``self.fc.bias.abs()``) reads the tensor the module holds, so only a format applied there
widens it. Tensors no node uses are totalled as *unattributed*, so the totals equal ``sum(p.numel() for p in
gm.parameters())`` of the traced model.

* ``model_size_bits`` counts parameters only. Buffers (BatchNorm's ``running_mean``,
  ``running_var`` and int64 ``num_batches_tracked``) are reported apart as ``buffer_bits``:
  deployment usually folds them into the preceding layer.
* ``avg_weight_bits`` is MASE's average bitwidth: ``sum(numel x bits) / sum(numel)`` over the
  weights of linear and conv layers only (MASE's quantizable layers; a float layer counts at
  its dtype width, biases and normalisation parameters are left out). ``avg_param_bits`` is
  the same average over *every* parameter, so it equals ``model_size_bits / params``.

Example:
    >>> import torch
    >>> from quantsearch.graph import trace
    >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(16, 5), torch.nn.BatchNorm1d(5)), torch.ones(8, 16))
    >>> p = param_cost(gm)
    >>> p.params, p.buffers, p.model_size_bits, p.buffer_bits
    (95, 11, 3040.0, 384.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from quantsearch.graph import NodeInfo, info
from quantsearch.passes.analysis.buffers import ALIAS_KINDS
from quantsearch.passes.analysis.owned import (
    Owned,
    counted_before,
    counted_ids,
    owned,
    owned_by_node,
    shares_tensors,
    tensor_owners,
)
from quantsearch.passes.analysis.tensors import (
    VIEW_ATTRS,
    arg_role,
    arg_storage,
    dtype_bits,
    role_storage,
)

__all__ = [
    "PARAM_KEYS",
    "WEIGHT_KINDS",
    "ParamCost",
    "Unattributed",
    "count_node_params",
    "count_params",
    "counted_before",
    "owner_costs",
    "param_cost",
    "priced_with",
    "shares_tensors",
    "tensor_owners",
    "total_param_cost",
    "unattributed",
    "widest_bits",
]

PARAM_KEYS = ("params", "trainable_params", "buffers", "param_bits", "buffer_bits")
# The layers whose weights MASE's average bitwidth covers.
WEIGHT_KINDS = frozenset({"linear", "conv1d", "conv2d", "conv3d"})
_ROLES = {"weight": "weight", "bias": "bias"}
_OWNERS = ("call_module", "get_attr", "call_function", "call_method")
_CALLS = ("call_module", "call_function", "call_method")
_SHAPE_READS = frozenset({"getattr", "size"})
_VIEWS = tuple((a,) for a in VIEW_ATTRS)  # getattr's attribute operand, as a slice of its args


@dataclass(frozen=True)
class ParamCost:
    """Parameter and buffer totals of a graph (independent of the batch size)."""

    params: int
    trainable_params: int
    buffers: int  # elements
    param_bits: float
    buffer_bits: float
    weight_elems: int  # elements of linear/conv weights
    weight_bits: float
    unattributed_params: int = 0  # parameters no node uses (included in the totals above)

    @property
    def model_size_bits(self) -> float:
        """Bits of all parameters, each at its own precision (buffers excluded)."""
        return self.param_bits

    @property
    def model_size_bytes(self) -> float:
        return self.param_bits / 8

    @property
    def avg_weight_bits(self) -> float:
        """MASE's average bitwidth over linear/conv weights (``avg_param_bits`` if none)."""
        return self.weight_bits / self.weight_elems if self.weight_elems else self.avg_param_bits

    @property
    def avg_param_bits(self) -> float:
        """Average bits per parameter over all parameters (0 for a parameter-free graph)."""
        return self.param_bits / self.params if self.params else 0.0


def _tensor_bits(t: torch.Tensor, ni: NodeInfo | None, role: str | None) -> float:
    if ni is None or role is None:
        return t.numel() * dtype_bits(t.dtype)
    return role_storage(ni, role, t.dtype, t.shape)


def _consumer_bits(node: fx.Node, t: torch.Tensor, applied: bool = False) -> float:
    """Bits the fetched tensor ``t`` is stored in: the widest format any consumer applies to
    it (through views; its dtype's width where a consumer applies none). ``applied``: the
    widest format applied only, 0 if none (a module's parameter read in forward: the module
    holds the stored tensor, and a consumer applying no format reads it as it is)."""
    plain = t.numel() * dtype_bits(t.dtype)
    widest = 0.0
    for user in node.users:
        kind = info(user).op_kind if user.op in _CALLS else None
        if kind in _SHAPE_READS and not (kind == "getattr" and user.args[1:2] in _VIEWS):
            continue  # reads the shape, not the values
        if kind is None:
            if not applied:
                widest = max(widest, plain)  # returned as it is: a graph output
        elif kind in ALIAS_KINDS:
            widest = max(widest, _consumer_bits(user, t, applied))
        elif not applied or info(user).precision.get(arg_role(user, node)) is not None:
            widest = max(widest, arg_storage(user, node))
    return widest or (0.0 if applied else plain)


def _zero(ni: NodeInfo) -> None:
    ni.cost.update(params=0, trainable_params=0, buffers=0, param_bits=0.0, buffer_bits=0.0)


def count_params(gm: fx.GraphModule) -> fx.GraphModule:
    """Annotate op and ``get_attr`` nodes with ``params``, ``trainable_params``, ``buffers`` (elements),
    ``param_bits`` and ``buffer_bits``; linear/conv nodes also get ``weight_elems`` and
    ``weight_bits`` (the MASE average-bitwidth terms).

    ``call_module`` nodes own their module's tensors, ``get_attr`` nodes the tensor they fetch
    (priced at the consuming layer's ``weight``/``bias`` precision).

    Args:
        gm: a graph built by :func:`quantsearch.graph.trace`.

    Returns:
        ``gm``, for chaining.
    """
    modules = dict(gm.named_modules())
    seen: set[int] = set()
    by_node = owned_by_node(gm, modules)
    widest = widest_bits(gm, modules, by_node)
    for node in gm.graph.nodes:
        if node.op in _OWNERS:
            _count(gm, node, modules, seen, widest, by_node.get(node))
    return gm


def count_node_params(
    gm: fx.GraphModule,
    node: fx.Node,
    modules: Mapping[str, nn.Module],
    seen: set[int],
    widest: Mapping[int, float] | None = None,
) -> None:
    """:func:`count_params` of one node that may own a tensor (``modules``: ``gm``'s
    ``named_modules()``). ``seen`` holds the ids of the tensors counted at earlier nodes
    (:func:`counted_before`); this node's own are added to it. ``widest``:
    :func:`widest_bits` of ``gm`` (computed here when ``None``). The entries read the node's
    own record, those of the nodes reading a fetched parameter and those of the nodes sharing
    a tensor with it (:func:`priced_with`)."""
    _count(gm, node, modules, seen, widest, None)


def _count(
    gm: fx.GraphModule,
    node: fx.Node,
    modules: Mapping[str, nn.Module],
    seen: set[int],
    widest: Mapping[int, float] | None,
    mine: Owned | None,
) -> None:
    """:func:`count_node_params`, with ``mine``: :func:`owned` of ``node`` if known."""
    ni = info(node)
    _zero(ni)
    if node.op == "call_method":
        return
    if node.op == "call_function" or (
        node.op == "call_module" and _function_form(modules[str(node.target)], ni)
    ):
        if ni.op_kind in WEIGHT_KINDS:
            w = node.args[1] if len(node.args) > 1 else node.kwargs.get("weight")
            wmeta = info(w).outputs[0] if isinstance(w, fx.Node) and info(w).outputs else None
            if wmeta is not None:
                ni.cost["weight_elems"] = wmeta.numel
                ni.cost["weight_bits"] = role_storage(ni, "weight", wmeta.dtype, wmeta.shape)
        return
    mine = owned(gm, node, modules) if mine is None else mine
    if widest is None and any(k not in seen for *_, k in mine):
        widest = widest_bits(gm, modules)
    widest = widest or {}
    tensors = [
        (t, widest[k] if p and k in widest else _stored_bits(node, role, t, p), p, k)
        for role, t, p, k in mine
    ]
    if node.op == "call_module":
        w = getattr(modules[str(node.target)], "weight", None)
        w_key = next((k for _, t, _, k in mine if t is w), None)
        if (
            ni.op_kind in WEIGHT_KINDS
            and isinstance(w, torch.Tensor)
            and (w_key not in seen or not _weight_before(gm, node, modules, w_key))
        ):
            held = widest.get(w_key) if w_key is not None else None
            bits = held if held is not None else _stored_bits(node, "weight", w, True)
            ni.cost["weight_elems"] = w.numel()
            ni.cost["weight_bits"] = bits
    for t, bits, is_param, key in tensors:
        if key in seen:
            continue
        seen.add(key)
        if is_param:
            ni.cost["params"] += t.numel()
            ni.cost["trainable_params"] += t.numel() if t.requires_grad else 0
            ni.cost["param_bits"] += bits
        else:
            ni.cost["buffers"] += t.numel()
            ni.cost["buffer_bits"] += bits


def _weight_before(
    gm: fx.GraphModule, node: fx.Node, modules: Mapping[str, nn.Module], key: int
) -> bool:
    """Whether a linear or conv node before ``node`` holds the tensor ``key`` as its weight:
    a weight tied to an embedding (met first) is still a linear layer's weight, averaged in
    ``avg_weight_bits`` once, at the first such layer."""
    for n in gm.graph.nodes:
        if n is node:
            return False
        weight_layer = n.op == "call_module" and info(n).op_kind in WEIGHT_KINDS
        if weight_layer and any(r == "weight" and k == key for r, _, _, k in owned(gm, n, modules)):
            return True
    return False


def _stored_bits(node: fx.Node, role: str | None, t: torch.Tensor, is_param: bool) -> float:
    """Bits ``node`` stores ``t`` in: a module's weight or bias in its format, a fetched
    parameter in the widest format its consumers apply, anything else in its dtype."""
    if not is_param:
        return t.numel() * dtype_bits(t.dtype)
    if node.op == "get_attr":
        return _consumer_bits(node, t)
    if role in _ROLES:
        return role_storage(info(node), role, t.dtype, t.shape)
    return t.numel() * dtype_bits(t.dtype)


def widest_bits(
    gm: fx.GraphModule,
    modules: Mapping[str, nn.Module],
    by_node: Mapping[fx.Node, Owned] | None = None,
) -> dict[int, float]:
    """The key of each parameter owned by several nodes -> the most bits any of them stores it
    in (:func:`_stored_bits`): the one stored tensor serves them all
    (``by_node``: :func:`~quantsearch.passes.analysis.owned.owned_by_node`, else computed)."""
    by_node = owned_by_node(gm, modules) if by_node is None else by_node
    out: dict[int, float] = {}
    owners = {k: ns for k, ns in tensor_owners(gm, modules, by_node).items() if len(ns) > 1}
    for key, nodes in owners.items():
        held = any(n.op == "call_module" for n in nodes)  # a module holds the stored tensor
        for n in nodes:
            for role, t, is_param, k in by_node[n]:
                if k == key and is_param:
                    if held and n.op == "get_attr":  # self.fc.bias read in forward
                        bits = _consumer_bits(n, t, applied=True)
                    else:
                        bits = _stored_bits(n, role, t, True)
                    out[key] = max(out.get(key, 0.0), bits)
    return out


def _function_form(mod: nn.Module, ni: NodeInfo) -> bool:
    """A function-form layer the quantize pass made a module (``F.linear(x, self.w)``): its
    weight is an argument, not a tensor of its own."""
    return ni.op_kind in WEIGHT_KINDS and getattr(mod, "weight", None) is None


def param_cost(gm: fx.GraphModule) -> ParamCost:
    """Run :func:`count_params` and total it, adding tensors no node uses.

    Returns:
        Totals; ``params`` equals ``sum(p.numel() for p in gm.parameters())``.
    """
    count_params(gm)
    return total_param_cost(owner_costs(gm), unattributed(gm))


def owner_costs(gm: fx.GraphModule) -> list[dict[str, Any]]:
    """The ``cost`` entries :func:`count_params` wrote, of every node that may own a tensor,
    in graph order."""
    return [info(n).cost for n in gm.graph.nodes if n.op in _OWNERS]


@dataclass(frozen=True)
class Unattributed:
    """What the totals add for tensors no node uses, in the order they are added:
    ``params`` as (elements, trainable elements, bits), ``buffers`` as (elements, bits)."""

    params: tuple[tuple[int, int, float], ...] = ()
    buffers: tuple[tuple[int, float], ...] = ()


def unattributed(gm: fx.GraphModule) -> Unattributed:
    """The tensors of ``gm`` that no node's :func:`count_params` entries count (read after
    :func:`count_params`), each at its dtype's width."""
    counted_params = counted_buffers = 0
    for c in owner_costs(gm):
        counted_params += c.get("params", 0)
        counted_buffers += c.get("buffers", 0)
    n_params = sum(p.numel() for p in gm.parameters())
    n_buffers = sum(b.numel() for b in gm.buffers())
    if n_params == counted_params and n_buffers == counted_buffers:
        return Unattributed()
    counted = counted_ids(gm)
    return Unattributed(
        params=tuple(
            (p.numel(), p.numel() if p.requires_grad else 0, _tensor_bits(p, None, None))
            for p in gm.parameters()
            if id(p) not in counted
        ),
        buffers=tuple(
            (b.numel(), _tensor_bits(b, None, None)) for b in gm.buffers() if id(b) not in counted
        ),
    )


def total_param_cost(costs: Iterable[Mapping[str, Any]], extra: Unattributed) -> ParamCost:
    """The totals of :func:`count_params`'s entries (``costs``: each tensor-owning node's, in
    graph order) and of the tensors no node uses (see
    :func:`~quantsearch.passes.analysis.flops.total_compute_cost` for why it is apart)."""
    totals = dict.fromkeys(PARAM_KEYS, 0.0)
    w_elems, w_bits = 0, 0.0
    for c in costs:
        for k in PARAM_KEYS:
            totals[k] += c.get(k, 0)
        w_elems += c.get("weight_elems", 0)
        w_bits += c.get("weight_bits", 0.0)
    n_unattributed = 0
    for numel, trainable, bits in extra.params:
        n_unattributed += numel
        totals["params"] += numel
        totals["trainable_params"] += trainable
        totals["param_bits"] += bits
    for numel, bits in extra.buffers:
        totals["buffers"] += numel
        totals["buffer_bits"] += bits
    return ParamCost(
        params=int(totals["params"]),
        trainable_params=int(totals["trainable_params"]),
        buffers=int(totals["buffers"]),
        param_bits=float(totals["param_bits"]),
        buffer_bits=float(totals["buffer_bits"]),
        weight_elems=w_elems,
        weight_bits=w_bits,
        unattributed_params=n_unattributed,
    )


def priced_with(
    node: fx.Node, owners: Mapping[int, list[fx.Node]] | None = None
) -> tuple[fx.Node, ...]:
    """The nodes whose formats (``NodeInfo.precision``) the analysis passes read to price
    ``node``: the node itself; for a tensor fetched by ``get_attr``, every node that reads
    it, through views (what :func:`_consumer_bits` looks at); and for a parameter other nodes
    own too (a module called twice, a tied weight), those nodes and theirs
    (:func:`widest_bits`). Every other per-node entry of :func:`count_params`,
    :func:`~quantsearch.passes.analysis.count_flops` and
    :func:`~quantsearch.passes.analysis.count_buffers` reads the node's own formats only.
    ``owners``: :func:`tensor_owners` of the node's graph (computed here when ``None``).
    """
    out = [node]
    if node.op not in ("call_module", "get_attr"):
        return tuple(out)
    if owners is None:
        gm = node.graph.owning_module
        owners = tensor_owners(gm) if isinstance(gm, fx.GraphModule) else {}
    todo = [node]
    for nodes in owners.values():
        if len(nodes) > 1 and node in nodes:
            todo.extend(n for n in nodes if n is not node)
    while todo:
        n = todo.pop(0)
        if n is not node and n in out:
            continue
        if n is not node:
            out.append(n)
        if n.op == "get_attr" or (
            n.op in _CALLS and info(n).op_kind in ALIAS_KINDS and n is not node
        ):
            todo.extend(u for u in n.users if u not in out)
    return tuple(out)
