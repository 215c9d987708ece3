"""Which node of a traced graph owns which tensor: a module's parameters and buffers, the
tensor a ``get_attr`` fetches; each parameter keyed once, by the tensor the quantize pass copied
it from (:data:`~quantsearch.graph.PARAM_ORIGINS`), so copies of one tensor are one.

:mod:`~quantsearch.passes.analysis.params` counts each tensor at its first owner; these say
which nodes own what, which share a tensor and what was counted before a node.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import fx, nn

from quantsearch.graph import PARAM_ORIGINS

__all__ = [
    "Owned",
    "counted_before",
    "counted_ids",
    "fetch",
    "owned",
    "owned_by_node",
    "shares_tensors",
    "tensor_owners",
]


def _origins(mod: nn.Module) -> dict[int, int]:
    """id of each parameter of ``mod`` (and its submodules) -> the id of the tensor it was
    copied from (:data:`~quantsearch.graph.PARAM_ORIGINS`), or its own id."""
    out: dict[int, int] = {}
    for m in mod.modules():
        origins = m.__dict__.get(PARAM_ORIGINS, {})
        for k, p in m._parameters.items():
            if p is not None:
                out[id(p)] = origins.get(k, id(p))
    return out


def owned(
    gm: fx.GraphModule, node: fx.Node, modules: Mapping[str, nn.Module]
) -> list[tuple[str | None, torch.Tensor, bool, int]]:
    """The tensors :func:`~quantsearch.passes.analysis.params.count_node_params` may count at ``node``, in its order: (the
    parameter's last name, tensor, is a parameter, the key it is counted once by) for a
    module's parameters then its buffers, or the tensor a ``get_attr`` fetches (no name). The
    key of a parameter the quantize pass copied is its original's id: a weight tied between
    two modules, or a module copied for a second call under another config, is counted once."""
    if node.op == "call_module":
        mod = modules[str(node.target)]
        if (
            not mod._modules
            and type(mod).named_parameters is _NAMED
            and (type(mod).buffers is _BUFFERS)
        ):
            return _leaf(mod)
        return _by_generators(mod)
    if node.op == "get_attr":
        value = fetch(gm, str(node.target))
        if isinstance(value, torch.Tensor):
            path, _, name = str(node.target).rpartition(".")
            origins = fetch(gm, path).__dict__.get(PARAM_ORIGINS, {})
            return [(None, value, isinstance(value, nn.Parameter), origins.get(name, id(value)))]
    return []


_NAMED, _BUFFERS = nn.Module.named_parameters, nn.Module.buffers


def _by_generators(mod: nn.Module) -> Owned:
    """:func:`owned` of a module, by ``named_parameters()`` and ``buffers()``."""
    keys = _origins(mod)
    return [
        (name.rsplit(".", 1)[-1], t, True, keys.get(id(t), id(t)))
        for name, t in mod.named_parameters()
    ] + [(None, t, False, id(t)) for t in mod.buffers()]


def _leaf(mod: nn.Module) -> Owned:
    """:func:`owned` of a module without submodules (most layers), read from its own tables
    in the order, and with the once-each of, ``named_parameters()`` and ``buffers()``:
    about a fifth of their generators' cost, which the static metrics pay per node priced."""
    origins = mod.__dict__.get(PARAM_ORIGINS, {})
    keys = {id(p): origins.get(k, id(p)) for k, p in mod._parameters.items() if p is not None}
    out: Owned = []
    seen: set[int] = set()
    for name, t in mod._parameters.items():
        if t is not None and id(t) not in seen:
            seen.add(id(t))
            out.append((name, t, True, keys[id(t)]))
    seen = set()
    for b in mod._buffers.values():
        if b is not None and id(b) not in seen:
            seen.add(id(b))
            out.append((None, b, False, id(b)))
    return out


def counted_before(gm: fx.GraphModule, node: fx.Node, modules: Mapping[str, nn.Module]) -> set[int]:
    """The ids of the tensors :func:`count_params` has counted when it reaches ``node``
    (the ``seen`` of :func:`count_node_params`)."""
    seen: set[int] = set()
    for n in gm.graph.nodes:
        if n is node:
            return seen
        seen.update(key for *_, key in owned(gm, n, modules))
    raise ValueError(f"node {node.name!r} is not in the graph")


def shares_tensors(gm: fx.GraphModule) -> list[bool]:
    """Per node of ``gm``, in graph order: whether it owns a tensor another node owns too (a
    module called twice, a tied weight). For a node that shares none, the ``seen`` of
    :func:`count_node_params` may be empty and its ``widest`` too: it only looks up the
    node's own tensors."""
    modules = dict(gm.named_modules())
    keys = [{key for *_, key in owned(gm, n, modules)} for n in gm.graph.nodes]
    count: dict[int, int] = {}
    for ids in keys:
        for key in ids:
            count[key] = count.get(key, 0) + 1
    return [any(count[k] > 1 for k in ids) for ids in keys]


def fetch(gm: fx.GraphModule, target: str) -> object:
    """The attribute ``target`` (dotted) of ``gm``."""
    obj: object = gm
    for part in target.split(".") if target else ():
        obj = getattr(obj, part)
    return obj


Owned = list[tuple[str | None, torch.Tensor, bool, int]]


def owned_by_node(gm: fx.GraphModule, modules: Mapping[str, nn.Module]) -> dict[fx.Node, Owned]:
    """:func:`owned` of every node that may own a tensor, in graph order."""
    return {n: owned(gm, n, modules) for n in gm.graph.nodes if n.op in ("call_module", "get_attr")}


def tensor_owners(
    gm: fx.GraphModule,
    modules: Mapping[str, nn.Module] | None = None,
    by_node: Mapping[fx.Node, Owned] | None = None,
) -> dict[int, list[fx.Node]]:
    """The key of each parameter (:func:`owned`) -> the nodes that own it, in graph order
    (``by_node``: :func:`owned_by_node`, computed here when ``None``)."""
    if by_node is None:
        by_node = owned_by_node(gm, dict(gm.named_modules()) if modules is None else modules)
    out: dict[int, list[fx.Node]] = {}
    for n, tensors in by_node.items():
        for *_, is_param, key in tensors:
            if is_param and n not in out.setdefault(key, []):
                out[key].append(n)
    return out


def counted_ids(gm: fx.GraphModule) -> set[int]:
    """The ids of every tensor some node owns (the rest are unattributed)."""
    modules = dict(gm.named_modules())
    ids: set[int] = set()
    for node in gm.graph.nodes:
        if node.op == "call_module":
            mod = modules[str(node.target)]
            ids.update(id(t) for t in (*mod.parameters(), *mod.buffers()))
        elif node.op == "get_attr":
            ids.add(id(fetch(gm, str(node.target))))
    return ids
