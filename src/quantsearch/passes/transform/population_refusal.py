"""What a :class:`~quantsearch.passes.transform.population.Population` refuses to run, and why.

A graph in training mode (weights would be quantized per forward pass), a format with
stochastic rounding (each call draws anew), a ``get_attr`` that reads inside a quantized
module (``quantize`` rebinds it to the copy), an op that works in place (``x.add_(y)``,
``inplace=True``: a value several configs share would change under the others), and a module
with forward hooks (their code runs in the module's call, which the population does not
make). The caller then evaluates the configs one at a time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from operator import attrgetter

from torch import fx

from quantsearch.formats import NumberFormat
from quantsearch.passes.transform.layer import LayerQuant
from quantsearch.passes.transform.modules import submodule
from quantsearch.passes.transform.resolved import ResolvedConfig

__all__ = ["Columns", "columns", "population_refusal", "refusal"]

Columns = dict[str, list[LayerQuant | None]]  # node -> each config's LayerQuant of it
# every field of a LayerQuant (so a field added later still takes part in columns' key)
_fields = attrgetter(*(f.name for f in dataclasses.fields(LayerQuant)))


def population_refusal(gm: fx.GraphModule, bound: Sequence[ResolvedConfig]) -> str | None:
    """Why ``bound`` (configs already bound to ``gm``) cannot run as a population, or ``None``."""
    return refusal(gm, columns(bound), {}, {})


def columns(
    bound: Sequence[ResolvedConfig], canon: dict[tuple[int, ...], LayerQuant] | None = None
) -> Columns:
    """Each node some config quantizes -> each config's :class:`LayerQuant` of it (``None``:
    the config leaves it float), the configs in order.

    ``canon``: a dict kept across calls (a :class:`~.population.Population`'s), by which a
    LayerQuant is replaced by the first one met with the very same format objects (equal
    ids of every field; the first is held by ``canon``, so its formats keep their ids). A
    search's formats are interned (``ResolvedConfig.from_dict``), so its new configs' equal
    node configs become one object, which memos by identity then find; one of new format
    objects stays as it is."""
    unset: list[LayerQuant | None] = [None] * len(bound)
    out: Columns = {}
    for c, rc in enumerate(bound):
        for name in rc:
            column = out.get(name)
            if column is None:
                column = out[name] = list(unset)
            lq = rc[name]
            if canon is not None:
                ident = tuple(map(id, _fields(lq)))
                first = canon.get(ident)
                if first is None:
                    if len(canon) >= 4096:
                        canon.clear()
                    canon[ident] = first = lq
                lq = first
            column[c] = lq
    return out


def refusal(
    gm: fx.GraphModule,
    by_node: Mapping[str, Sequence[LayerQuant | None]],
    checked: dict[int, LayerQuant],
    graph_why: dict[frozenset[str], str | None],
) -> str | None:
    """:func:`population_refusal` of configs given as their :func:`columns` ``by_node``,
    adding to ``checked`` (id -> a LayerQuant found deterministic, held so the id stays its)
    and ``graph_why`` (quantized module targets -> what the graph's nodes refuse), which a
    :class:`Population` keeps between calls."""
    if gm.training:
        return "the graph is in training mode"
    quantized: set[str] = set()
    nodes = {node.name: node for node in gm.graph.nodes}
    for name, column in by_node.items():
        for lq in column:
            if lq is None or checked.get(id(lq)) is lq:
                continue
            if any(isinstance(f, NumberFormat) and not f.deterministic for _, f in lq.items()):
                return f"node {name!r} has a format with stochastic rounding"
            if len(checked) >= 65536:
                checked.clear()
            checked[id(lq)] = lq
        node = nodes.get(name)
        if node is not None and node.op == "call_module":
            quantized.add(str(node.target))
    key = frozenset(quantized)
    if key not in graph_why:
        if len(graph_why) >= 256:
            graph_why.clear()
        graph_why[key] = _graph_refusal(gm, key)
    return graph_why[key]


def _graph_refusal(gm: fx.GraphModule, quantized: frozenset[str]) -> str | None:
    for node in gm.graph.nodes:
        target = str(node.target)
        if node.op == "get_attr" and any(target.startswith(t + ".") for t in quantized):
            return f"get_attr {target!r} reads inside a quantized module"
        if _in_place(gm, node):
            return f"node {node.name!r} works in place (a value configs share would change)"
        if node.op == "call_module" and _hooked(submodule(gm, target)):
            return f"module {target!r} has forward hooks (the population runs no module's call)"
    return None


def _hooked(mod: object) -> bool:
    """Whether ``mod`` has forward hooks or pre-hooks (``register_forward_hook``), code its
    call runs around its forward."""
    return bool(getattr(mod, "_forward_hooks", None) or getattr(mod, "_forward_pre_hooks", None))


def _in_place(gm: fx.GraphModule, node: fx.Node) -> bool:
    """Whether ``node`` may overwrite an input: ``x.add_(y)``, ``F.relu(x, inplace=True)``,
    ``nn.ReLU(inplace=True)``."""
    if node.kwargs.get("inplace") is True:
        return True
    if node.op == "call_method":
        name = str(node.target)
        return name.endswith("_") and not name.startswith("__")
    if node.op == "call_module":
        return getattr(submodule(gm, str(node.target)), "inplace", False) is True
    return False
