"""The totals of a config's memoised per-node entries without a walk over the graph: the
entries its structure fixes summed once, the few the config varies added to them.

The analysis passes total their entries in graph order (``total_compute_cost``,
``total_param_cost``, ``total_activation_cost``). An integer sum is the same in any order. So
is a float sum whose every partial sum is exact: every value totalled here is non-negative
(elements, bits), and every one is a multiple of ``1/d``, ``d`` being the largest
denominator of any summand's ``as_integer_ratio()`` (a power of two: 1 for the
integer-valued bits of a fixed-point format, 2 for 8.5 bits). Every partial sum is then a
multiple of ``1/d`` no larger than the total, and all of them are exact while the total is
below ``2**53 / d``: the sum is the exact one whichever the order. :meth:`Totals.values`
checks that bound with a margin of two (``total * d < 2**52``, so a total rounded below it
cannot hide an inexact one) and answers ``None`` otherwise, as it does for a node without a
cost rule (whose warning the passes' totals give): the caller then totals every entry in graph
order with the passes' own functions. The peak activation is a maximum, the same in any order
but for which node holds it: ties go to the earliest node, as the passes' strict ``>`` does.

The totals are then handed to the passes' own cost records (``ComputeCost``, ``ParamCost``,
``ActivationCost``) and the metric groups' value functions, so each metric's formula (a mean,
a per-sample division) stays in one place. ``tests/metrics/test_static.py`` checks every value
``==`` the passes on a freshly quantized graph.

Example:
    >>> (0.1 + 0.2) + 0.3 == 0.1 + (0.2 + 0.3)  # denominators 2**55 and more: order shows
    False
    >>> (4.5 * 80 + 6.625 * 5) + 16 * 64 == 4.5 * 80 + (6.625 * 5 + 16 * 64)  # d = 8
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from operator import add
from typing import Any, NamedTuple

from quantsearch.graph import NodeInfo
from quantsearch.metrics.groups import activation_values, cost_values, param_values
from quantsearch.passes.analysis import (
    ActivationCost,
    ComputeCost,
    ParamCost,
    Unattributed,
)
from quantsearch.passes.analysis.buffers import ALIAS_KINDS

__all__ = ["CALLS", "INPUTS_AND_CALLS", "OWNERS", "Row", "Totals", "node_row"]

# The nodes each pass prices (as the passes select them; a quantized function node stays a call).
CALLS = frozenset({"call_module", "call_function", "call_method"})
OWNERS = CALLS | {"get_attr"}
INPUTS_AND_CALLS = CALLS | {"placeholder"}

# Per node, what the totals add, in this order: compute_cost's (macs, flops, flops_backward,
# bitops), param_cost's (PARAM_KEYS, then weight_elems, weight_bits), activation_cost's
# (elements, bits) sums.
_WIDTH = 13
_FLOATS = (3, 4, 5, 6, 7, 8, 10, 12)  # the sums the passes accumulate in floats
_LIMIT = 2**52


class Row(NamedTuple):
    """One node's entries as the totals read them."""

    values: tuple[Any, ...]  # its term of each sum (:data:`_WIDTH` of them), 0 where none
    # largest denominator of a term; 0: not summable here (a term negative or not finite, or
    # no cost rule: the passes' totals leave the node out, with a warning)
    grain: int
    peak: tuple[float, int] | None  # (in + out bits, elements): a peak activation candidate


def node_row(rec: NodeInfo, c: Mapping[str, Any], groups: tuple[bool, bool, bool]) -> Row:
    """The :class:`Row` of the entries ``c`` of the node ``rec`` (the traced record: its op and
    op kind) for the metric groups on in ``groups`` (compute, params, activations)."""
    flops, params, buffers = groups
    op = rec.op
    uncounted = False
    compute: tuple[Any, ...] = (0, 0, 0, 0)
    if flops and op in CALLS:
        if "uncounted" in c:
            uncounted = True
        else:
            compute = (c["macs"], c["flops"], c["flops_backward"], c["bitops"])
    owned: tuple[Any, ...] = (0, 0, 0, 0, 0, 0, 0)
    if params and op in OWNERS:
        get = c.get
        owned = (
            get("params", 0),
            get("trainable_params", 0),
            get("buffers", 0),
            get("param_bits", 0),
            get("buffer_bits", 0),
            get("weight_elems", 0),
            get("weight_bits", 0.0),
        )
    kept: tuple[Any, ...] = (0, 0)
    peak = None
    if buffers and op in INPUTS_AND_CALLS:
        if rec.op_kind not in ALIAS_KINDS:
            kept = (c["out_elems"], c["out_bits"])
        if op != "placeholder":
            peak = (c["in_bits"] + c["out_bits"], c["in_elems"] + c["out_elems"])
    v = compute + owned + kept
    return Row(v, 0 if uncounted else _grain(v), peak)


def _grain(terms: Any) -> int:
    grain = 1
    for x in terms:
        if type(x) is int:  # most terms: elements, MACs, integer bits
            if x < 0:
                return 0
        elif not (x >= 0 and math.isfinite(x)):
            return 0
        else:
            d = x.as_integer_ratio()[1]
            if d > grain:
                grain = d
    return grain


class Totals:
    """The totals of one structure's configs: its constant entries (every node a config of
    it leaves alone) summed once; :meth:`values` adds a config's varying entries.

    Args:
        rows: per node in graph order, its :class:`Row` if constant, else ``None``.
        nodes: the node names, in graph order.
        names: the metric names asked for (of the groups on), in order.
        groups: the metric groups on (compute, params, activations).
        extra: the structure's tensors no node uses (with the params group).
        batch: the traced batch size.
    """

    __slots__ = (
        "_batch",
        "_const",
        "_generic",
        "_grain",
        "_groups",
        "_names",
        "_nodes",
        "_peak",
        "_unatt",
        "_varying",
    )

    def __init__(
        self,
        rows: Sequence[Row | None],
        nodes: Sequence[str],
        names: Sequence[str],
        groups: tuple[bool, bool, bool],
        extra: Unattributed | None,
        batch: int,
    ) -> None:
        const: list[Any] = [0] * _WIDTH
        for i in _FLOATS:
            const[i] = 0.0
        grain, summable = 1, True
        best: tuple[float, int, int] = (0.0, 0, -1)  # (bits, elements, node index)
        self._varying = [i for i, r in enumerate(rows) if r is None]
        for i, r in enumerate(rows):
            if r is None:
                continue
            const = list(map(add, const, r.values))
            summable = summable and r.grain > 0
            grain = max(grain, r.grain)
            if r.peak is not None and r.peak[0] > best[0]:
                best = (r.peak[0], r.peak[1], i)
        self._unatt = 0
        if extra is not None:
            for numel, trainable, bits in extra.params:
                self._unatt += numel
                const[4] += numel
                const[5] += trainable
                const[7] += bits
            for numel, bits in extra.buffers:
                const[6] += numel
                const[8] += bits
            g = _grain([b for *_, b in extra.params] + [b for _, b in extra.buffers])
            summable = summable and g > 0
            grain = max(grain, g)
        self._const = tuple(const)
        self._grain = grain
        self._generic = not summable  # a constant node not summable here: every config
        self._peak = best
        self._nodes = nodes
        self._names = tuple(names)
        self._groups = groups
        self._batch = batch

    def values(
        self, rows: Sequence[Row], same: dict[Any, dict[str, float]] | None = None
    ) -> dict[str, float] | None:
        """The metric values of a config whose varying nodes (the ``None`` of the ``rows``
        given at construction, in graph order) have the rows ``rows``; ``None`` where the
        sums are not provably those of the passes (see the module docstring): total them in
        graph order then.

        ``same``: values already given, by their totals (and this object), a dict the
        caller keeps (an evaluator keeps one per thread, bounded): configs whose totals are
        equal (a search's many configs of a few widths) get a copy of the first one's
        values, a function of the totals alone."""
        if self._generic:
            return None
        grain = self._grain
        for r in rows:
            g = r.grain
            if not g:
                return None
            if g > grain:
                grain = g
        if len(rows) > 1:  # one pass over the columns (as exact, by the bound below)
            sums = tuple(map(sum, zip(self._const, *[r.values for r in rows], strict=True)))
        else:
            sums = tuple(map(add, self._const, rows[0].values)) if rows else self._const
        if max(sums) * grain >= _LIMIT:
            return None
        best_bits, best_elems, best = self._peak
        if self._groups[2]:
            for i, r in zip(self._varying, rows, strict=True):
                p = r.peak
                if p is not None and (p[0] > best_bits or (p[0] == best_bits and 0 <= i < best)):
                    best_bits, best_elems, best = p[0], p[1], i
        if same is None:
            got = self._by_records(sums, best_bits, best_elems, best)
            return {n: got[n] for n in self._names}
        key = (self, sums, best_bits, best_elems, best)
        out = same.get(key)
        if out is None:
            got = self._by_records(sums, best_bits, best_elems, best)
            out = same[key] = {n: got[n] for n in self._names}
        return dict(out)

    def _by_records(
        self, sums: Sequence[Any], peak_bits: float, peak_elems: int, peak: int
    ) -> dict[str, float]:
        """The values by the passes' cost records and the groups' value functions."""
        flops, params, buffers = self._groups
        out: dict[str, float] = {}
        if flops:
            cc = ComputeCost(sums[0], sums[1], sums[2], float(sums[3]), self._batch)
            out.update(cost_values(cc))
        if params:
            pc = ParamCost(
                params=int(sums[4]),
                trainable_params=int(sums[5]),
                buffers=int(sums[6]),
                param_bits=float(sums[7]),
                buffer_bits=float(sums[8]),
                weight_elems=sums[9],
                weight_bits=float(sums[10]),
                unattributed_params=self._unatt,
            )
            out.update(param_values(pc))
        if buffers:
            node = self._nodes[peak] if peak >= 0 else None
            ac = ActivationCost(sums[11], float(sums[12]), peak_elems, peak_bits, node, self._batch)
            out.update(activation_values(ac))
        return out
