"""The static metrics of many configs of one traced model, priced from memoised per-node entries.

``compute_metrics(quantize(gm, config), names)`` runs the analysis passes over the whole
quantized graph for every config: hundreds of microseconds on a small model, more than a
population's share of the forward pass (issue 15). Yet each node's entries
(``NodeInfo.cost``) are a function of two things only:

1. the *structure* ``quantize`` builds: which nodes are quantized and which calls of one
   module share a copy (:func:`~quantsearch.passes.transform.quantize.plan_targets`). It
   fixes each node's op and module, and which tensors nodes share (``count_params`` counts a
   shared tensor at the first node that uses it). It follows from which nodes the config
   quantizes and from the configs of the nodes that call a module another node calls too.
2. the formats the passes read for the node (:func:`~quantsearch.passes.analysis.priced_with`):
   its own and, for a parameter fetched by ``get_attr``, those of the nodes that read it.

:class:`StaticMetrics` keeps each node's entries per (structure, node, those formats), bounded.
A structure's nodes split in two: those its configs vary (the quantized nodes and the
parameters they fetch) and the rest, whose one entry each is summed once per structure. A
config of a known structure then costs a look-up per node it quantizes (by the ids of its
``LayerQuant``'s formats, which the search interns, else by equality) and the sums of those
entries with the constant part (:mod:`quantsearch.metrics.static_totals`): sums that equal,
to the last bit, the passes' own in-order totals (``total_compute_cost``,
``total_param_cost``, ``total_activation_cost``), because every term is a non-negative
multiple of a power of two small enough for every partial sum to be exact; where that cannot
be shown (bits such as 0.1 a element, a node without a cost rule) the entries are totalled
in graph order by those functions. Either way every value equals (``==``) what
``compute_metrics`` gives on the config's graph, and no graph is built or filled for a
config whose every node was met before. A config of a known
structure with some nodes not met before has only those nodes priced, by the passes'
per-node functions (``count_node_flops``, ``count_node_params``, ``count_node_buffers``) on
the graph the structure was last measured on (kept for the few most recent structures),
with the config's records put in place of the nodes those entries read
(:func:`~quantsearch.passes.analysis.priced_with`) for the time it takes: no graph is built
or filled for it either (a lab search's configs each bring a new linear layer). Only a
structure met first, or whose graph was dropped, runs the passes on the config's whole graph
(``tests/metrics/test_static.py`` checks the equality on every zoo model, with every
registered format's examples and random per-layer configs; ``test_static_totals.py`` the
sums and where they give way to the in-order totals).

Every registered static metric is priced this way: the peak activation is a maximum over
per-node entries and the averages are ratios of sums, all read from the same entries. A static
metric of another group (none is registered) is not in :attr:`StaticMetrics.names`; the
caller measures it with :func:`~quantsearch.metrics.compute_metrics` on the config's graph.

Example:
    >>> import torch
    >>> from quantsearch.graph import trace
    >>> from quantsearch.metrics import compute_metrics
    >>> from quantsearch.passes.transform import ResolvedConfig, quantize
    >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(4, 2)).eval(), torch.ones(3, 4))
    >>> sm = StaticMetrics(gm, ["bitops", "model_size_bits", "accuracy"])
    >>> sm.names
    ('bitops', 'model_size_bits')
    >>> for w in (4, 8, 4):
    ...     rc = ResolvedConfig.from_dict({"_0": {"weight": {"format": "fixed", "width": w, "frac_width": 2}}}, gm=gm)
    ...     assert sm.values(rc, lambda: quantize(gm, rc)) == compute_metrics(quantize(gm, rc), sm.names)
    >>> sm.hits, sm.partial, sm.misses  # 8 bits: the node alone; the second 4: the memo
    (1, 1, 1)
"""

from __future__ import annotations

import dataclasses
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from functools import reduce
from operator import attrgetter
from typing import Any

from torch import fx, nn

from quantsearch.graph import META_KEY, NodeInfo, info
from quantsearch.metrics.groups import (
    activation_metrics,
    activation_values,
    compute_cost_metrics,
    cost_values,
    param_metrics,
    param_values,
)
from quantsearch.metrics.specs import metric_spec
from quantsearch.metrics.static_totals import (
    CALLS,
    INPUTS_AND_CALLS,
    OWNERS,
    Row,
    Totals,
    node_row,
)
from quantsearch.passes.analysis import (
    Unattributed,
    activation_cost,
    compute_cost,
    count_node_buffers,
    count_node_flops,
    count_node_params,
    count_params,
    counted_before,
    owner_costs,
    priced_with,
    shares_tensors,
    tensor_owners,
    total_activation_cost,
    total_compute_cost,
    total_param_cost,
    traced_batch_size,
    unattributed,
    widest_bits,
)
from quantsearch.passes.transform.layer import LayerQuant

__all__ = ["StaticMetrics"]

_PRICED = (compute_cost_metrics, param_metrics, activation_metrics)

Entry = dict[str, Any]
# A node's entries, kept with their row for the totals (metrics/static_totals.py).
Kept = tuple[Entry, Row]
# A varying node's memo by the ids of its LayerQuant's formats (the search's formats are
# interned: make_format), each kept with the formats, so that an id cannot be reused while
# its entry lives: the same entries as the memo by equality, without hashing a LayerQuant.
Fast = dict[tuple[int, ...], tuple[tuple[Any, ...], Kept]]
_Varying = tuple[int, str, tuple[str, ...] | None, dict[Hashable, Kept], Fast]
# every field of a LayerQuant (its formats by role): equal ids, equal LayerQuants
_formats = attrgetter(*(f.name for f in dataclasses.fields(LayerQuant)))


class _Structure:
    """The entries met for one graph structure: per node, its formats -> its entries.

    ``varying`` lists the nodes whose formats its configs choose (quantized nodes and the
    parameters they fetch: node index, name, the names of its readers or None, its memo, and
    its memo by the identity of a ``LayerQuant``'s formats); every other node has one entry
    for all of them, totalled once in ``totals``."""

    __slots__ = ("const", "extra", "fx_nodes", "graph", "nodes", "shares", "totals", "varying")

    def __init__(self, n: int, shares: list[bool]) -> None:
        self.nodes: list[dict[Hashable, Kept]] = [{} for _ in range(n)]
        self.extra: Unattributed | None = None  # tensors no node uses (a structure's fact)
        # a graph of this structure, on which a node not met is priced (None: not kept)
        self.graph: fx.GraphModule | None = None
        self.fx_nodes: list[fx.Node] | None = None  # graph's nodes, listed on first use
        self.shares = shares  # per node: owns a tensor another node owns (count_params)
        self.varying: list[_Varying] = []
        self.const: list[Entry | None] = []  # per node: its one entry (None: varying)
        self.totals: Totals | None = None


class StaticMetrics:
    """The static metrics of configs of ``gm``, from per-node entries memoised per (structure,
    node, formats the node is priced with); see the module docstring.

    One instance serves one thread (an :class:`~quantsearch.search.evaluate.Evaluator` keeps
    one per thread, as it keeps its prepared model).

    Args:
        gm: the traced model the configs quantize; read, never modified.
        names: metric names; the static ones are priced (:attr:`names`), the rest ignored.
        entries: the most per-node entries kept; when full, all are dropped and met again (a
            search meets a few formats per node; the 10^4-point per-layer space of jsc-tiny
            about 200 entries in all). ``max_entries`` may be changed later; 0 keeps none.
        graphs: the most structures whose graph is kept to price new nodes on, least
            recently measured dropped first (a graph holds its quantized weights; a random
            search over which nodes to quantize meets a new structure every few trials). A
            structure without one has its whole graph measured again when a node is new.
    """

    def __init__(
        self,
        gm: fx.GraphModule,
        names: Sequence[str],
        *,
        entries: int = 2**16,
        graphs: int = 4,
    ) -> None:
        specs = [metric_spec(n) for n in dict.fromkeys(names)]
        priced = [s for s in specs if s.kind == "static" and s.compute in _PRICED]
        self.names: tuple[str, ...] = tuple(s.name for s in priced)
        groups = {s.compute for s in priced}
        self._flops = compute_cost_metrics in groups
        self._params = param_metrics in groups
        self._buffers = activation_metrics in groups
        nodes = list(gm.graph.nodes)
        self._records: list[NodeInfo] = [info(n) for n in nodes]
        self._node_names = tuple(n.name for n in nodes)
        owners = tensor_owners(gm)
        readers = [priced_with(n, owners) for n in nodes]
        index = {n: i for i, n in enumerate(nodes)}
        self._priced_with = [tuple(index[x] for x in r) for r in readers]
        self._ops = tuple(n.op for n in nodes)
        # None: the node is priced with its own formats only (every node but a get_attr)
        self._readers = [
            None if r == (n,) else tuple(x.name for x in r)
            for n, r in zip(nodes, readers, strict=True)
        ]
        calls = Counter(str(n.target) for n in nodes if n.op == "call_module")
        self._shared = tuple(
            n.name for n in nodes if n.op == "call_module" and calls[str(n.target)] > 1
        )
        self._calls = [i for i, n in enumerate(nodes) if n.op in CALLS]
        self._owners = [i for i, n in enumerate(nodes) if n.op in OWNERS]
        self._inputs_and_calls = [i for i, n in enumerate(nodes) if n.op in INPUTS_AND_CALLS]
        self._batch = traced_batch_size(gm)
        self._groups = (self._flops, self._params, self._buffers)
        self.max_entries = entries
        self._structures: dict[Hashable, _Structure] = {}
        self.max_graphs = graphs
        self._graphs: OrderedDict[Hashable, _Structure] = OrderedDict()  # those with a graph
        self._held = 0  # entries kept, over all structures
        self.hits = 0  # configs priced from the memo alone
        self.partial = 0  # configs priced from the memo and their nodes not met before
        self.misses = 0  # configs whose graph the passes ran on
        # hits and partials totalled entry by entry in graph order (metrics/static_totals.py
        # could not show its sums equal the passes' there)
        self.in_order = 0

    def values(
        self,
        config: Mapping[str, Hashable],
        graph: Callable[[], fx.GraphModule],
        *,
        records: bool = False,
        same: dict[Any, dict[str, float]] | None = None,
    ) -> dict[str, float]:
        """The values of :attr:`names` for ``config``, in that order.

        Args:
            config: the per-node config bound to ``gm`` (node name -> ``LayerQuant``: a
                ``ResolvedConfig`` after ``bind(gm, calibration)``).
            graph: gives the config's quantized graph with fresh records: ``quantize(gm,
                config)`` or the prepared model configured with it (``PreparedModel.apply_``).
                Called for the first config of a structure, and with ``records``; the graph
                is kept (one per structure) to price the nodes later configs bring.
            records: also leave each node's entries in the records of ``graph()``, as the
                passes leave them (for a graph read afterwards).
            same: a dict kept by the caller (:meth:`.static_totals.Totals.values`: equal
                totals, one computation).

        Raises:
            whatever the analysis passes raise on the config's graph (a format without a
            numeric ``bits_per_element``: ``MetricError``); nothing is memoised then.
        """
        if not self.names:
            return {}
        if self._held > self.max_entries:  # the bound was lowered since
            self._structures.clear()
            self._graphs.clear()
            self._held = 0
        get = config.get
        # which nodes are quantized and how the shared modules are: the structure (see the
        # module docstring); a name outside the graph only makes the key finer
        structure: Hashable = frozenset(config)
        if self._shared:
            structure = (structure, tuple(get(n) for n in self._shared))
        st = self._structures.get(structure)
        if st is None or st.totals is None:
            self.misses += 1
            return self._measure(graph(), structure, config)
        found: list[Kept | None] = []  # per varying node, in order
        missing: list[int] = []  # positions in found
        for _, name, readers, memo, fast in st.varying:
            if readers is None:
                key = get(name)
                if type(key) is LayerQuant:
                    formats = _formats(key)
                    ident = tuple(map(id, formats))
                    hit = fast.get(ident)
                    if hit is not None:
                        found.append(hit[1])
                        continue
                    kept = memo.get(key)
                    if kept is not None and self._held < self.max_entries:
                        fast[ident] = (formats, kept)
                        self._held += 1
                else:
                    kept = memo.get(key)
            else:
                kept = memo.get(tuple(get(x) for x in readers))
            if kept is None:
                missing.append(len(found))
            found.append(kept)
        if missing:
            if st.graph is None or self._held + len(missing) > self.max_entries:
                self.misses += 1
                return self._measure(graph(), structure, config)
            at = [st.varying[j][0] for j in missing]
            for j, i, entry in zip(missing, at, self._price(st, config, at), strict=True):
                _, name, readers, memo, _ = st.varying[j]
                key = get(name) if readers is None else tuple(get(x) for x in readers)
                found[j] = memo[key] = (entry, node_row(self._records[i], entry, self._groups))
                self._held += 1
            self._graphs.move_to_end(structure)
            self.partial += 1
        else:
            self.hits += 1
        known: list[Kept] = found  # type: ignore[assignment]  # no None: filled above
        values = st.totals.values([k[1] for k in known], same)
        if values is None or records:
            entries = list(st.const)
            for (i, *_), kept in zip(st.varying, known, strict=True):
                entries[i] = kept[0]
            every: list[Entry] = entries  # type: ignore[assignment]  # no None: filled above
            if records:
                for node, entry in zip(graph().graph.nodes, every, strict=True):
                    info(node).cost.update(entry)
            if values is None:
                self.in_order += 1
                return self._totals(every, st.extra)
        return values

    def _keys(self, config: Mapping[str, Hashable]) -> list[Hashable]:
        """Per node, the formats its entries are priced with under ``config``."""
        get = config.get
        return [
            get(n) if r is None else tuple(get(x) for x in r)
            for n, r in zip(self._node_names, self._readers, strict=True)
        ]

    def _measure(
        self, g: fx.GraphModule, structure: Hashable, config: Mapping[str, Hashable]
    ) -> dict[str, float]:
        """Run the passes on ``g`` (writing its records), keep every node's entries."""
        values: dict[str, float] = {}
        extra: Unattributed | None = None
        if self._flops:
            values.update(cost_values(compute_cost(g), stacklevel=4))
        if self._params:
            count_params(g)
            extra = unattributed(g)
            values.update(param_values(total_param_cost(owner_costs(g), extra)))
        if self._buffers:
            values.update(activation_values(activation_cost(g)))
        out = {n: values[n] for n in self.names}
        keys = self._keys(config)
        if self._held + len(keys) > self.max_entries:
            self._structures.clear()
            self._graphs.clear()
            self._held = 0
            if len(keys) > self.max_entries:  # no room even alone (max_entries = 0: memo off)
                return out
        st = self._structures.get(structure)
        if st is None:
            shares = shares_tensors(g) if self._params else []
            st = self._structures[structure] = _Structure(len(keys), shares)
        if st.graph is None and self.max_graphs > 0:
            while len(self._graphs) >= self.max_graphs:
                _, old = self._graphs.popitem(last=False)
                old.graph = old.fx_nodes = None
            st.graph = g
            self._graphs[structure] = st
        for i, (d, k, node) in enumerate(zip(st.nodes, keys, g.graph.nodes, strict=True)):
            if k not in d:
                entry = dict(info(node).cost)
                d[k] = (entry, node_row(self._records[i], entry, self._groups))
                self._held += 1
        st.extra = extra
        if st.totals is None:
            self._plan(st, config, keys)
        return out

    def _plan(self, st: _Structure, config: Mapping[str, Hashable], keys: list[Hashable]) -> None:
        """Split ``st``'s nodes into those its configs vary (a quantized node, a parameter a
        quantized node reads) and the rest, whose one entry each is totalled once."""
        quantized = frozenset(config)
        rows: list[Row | None] = []
        for i, (name, readers) in enumerate(zip(self._node_names, self._readers, strict=True)):
            kept = st.nodes[i][keys[i]]
            if name in quantized if readers is None else not quantized.isdisjoint(readers):
                st.varying.append((i, name, readers, st.nodes[i], {}))
                st.const.append(None)
                rows.append(None)
            else:
                st.const.append(kept[0])
                rows.append(kept[1])
        st.totals = Totals(rows, self._node_names, self.names, self._groups, st.extra, self._batch)

    def _price(
        self, st: _Structure, config: Mapping[str, Hashable], missing: list[int]
    ) -> list[Entry]:
        """The entries of the nodes at ``missing`` for ``config``, priced on the
        structure's graph by the passes' per-node functions, in the passes' order. The nodes
        the entries read get the config's records (precision, as the quantize pass writes it;
        an empty cost) for the time it takes; the graph's own come back after."""
        g = st.graph
        assert g is not None  # values() measures the whole graph otherwise
        if st.fx_nodes is None:
            st.fx_nodes = list(g.graph.nodes)
        nodes = st.fx_nodes
        touched = sorted({j for i in missing for j in self._priced_with[i]})
        saved = {j: nodes[j].meta[META_KEY] for j in touched}
        try:
            for j in touched:
                lq: Any = config.get(self._node_names[j])
                precision = dict(self._records[j].precision) if lq is None else dict(lq.items())
                nodes[j].meta[META_KEY] = dataclasses.replace(
                    saved[j], precision=precision, cost={}
                )
            ops = self._ops
            shared = self._params and any(st.shares[i] for i in missing)
            modules: dict[str, nn.Module] = (
                dict(g.named_modules())
                if shared
                else {  # an attribute walk: get_submodule's checks cost some 3 us a node
                    str(nodes[i].target): reduce(getattr, str(nodes[i].target).split("."), g)
                    for i in missing
                    if nodes[i].op == "call_module"  # a quantized function's is one too
                }
            )
            if self._flops:
                for i in missing:
                    if ops[i] in CALLS:
                        count_node_flops(nodes[i], modules)
            if self._params:
                widest = widest_bits(g, modules) if shared else {}
                for i in missing:
                    if ops[i] in OWNERS:  # seen: what count_params has counted before it
                        seen = counted_before(g, nodes[i], modules) if st.shares[i] else set()
                        count_node_params(g, nodes[i], modules, seen, widest)
            if self._buffers:
                for i in missing:
                    if ops[i] in INPUTS_AND_CALLS:
                        count_node_buffers(nodes[i])
            return [dict(info(nodes[i]).cost) for i in missing]
        finally:
            for j, record in saved.items():
                nodes[j].meta[META_KEY] = record

    def _totals(self, entries: list[Entry], extra: Unattributed | None) -> dict[str, float]:
        """The totals of memoised entries in graph order, by the passes' own totalling
        functions (where :class:`Totals` cannot show its sums are theirs)."""
        values: dict[str, float] = {}
        rec = self._records
        if self._flops:
            rows = [(rec[i], entries[i]) for i in self._calls]
            values.update(cost_values(total_compute_cost(rows, self._batch), stacklevel=4))
        if self._params:
            assert extra is not None  # values() measured the structure otherwise
            values.update(param_values(total_param_cost([entries[i] for i in self._owners], extra)))
        if self._buffers:
            rows = [(rec[i], entries[i]) for i in self._inputs_and_calls]
            values.update(activation_values(total_activation_cost(rows, self._batch)))
        return {n: values[n] for n in self.names}
