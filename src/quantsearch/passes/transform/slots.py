"""Quantize without rebuilding: a traced model prepared once, its quantizers slots a config fills.

:func:`~quantsearch.passes.transform.quantize` copies the graph and has torch.fx generate and
compile a new ``forward`` for every config (0.5-1.3 ms on the zoo models), which a search pays
every trial. A :class:`PreparedModel` builds that quantized module once per graph *structure*
(which nodes are quantized, which calls of a module share it: :func:`.quantize.plan_targets`) and, for
each later config of the same structure, only fills the slots of the modules it already holds:

- weights and biases are quantized from the pristine tensors of the traced model and memoised
  per (module, role, format), so a format seen in an earlier trial costs a dictionary look-up;
- activation quantizers are the formats themselves, set on the modules;
- each node's :class:`~quantsearch.graph.NodeInfo` is rewritten with the config's precision
  and an empty cost, as ``quantize`` writes it, so the metrics read the same facts.

The compiled ``forward`` reads each submodule by attribute, so swapping a module (the fallback
for a module kind without slots) needs no recompile either. It is generated when the module
first runs, not when it is built: a batched search prices its first config's static metrics
on the module's graph and evaluates the configs as a population, so it never runs it. Outputs are bit-identical to
``quantize(gm, config)`` for every format (the tests compare them with ``torch.equal``); the
computation is the same function of the same tensors.

``apply_`` mutates the prepared module and returns it (the trailing underscore), so it is for
one thread at a time: an evaluator keeps one :class:`PreparedModel` per thread. Modules in
training mode quantize weights in every forward pass from trainable copies, which a later
config must not inherit, so a training-mode graph is always quantized afresh.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from torch import Tensor, fx, nn

from quantsearch.formats import NumberFormat
from quantsearch.graph import META_KEY, info
from quantsearch.passes.transform.calibrate import CalibrationStats
from quantsearch.passes.transform.functional import QuantParamFunction
from quantsearch.passes.transform.layer import PARAM_ROLES, LayerQuant
from quantsearch.passes.transform.modules import (
    QUANTIZERS,
    QuantFunction,
    _QuantBatchNorm,
    _QuantLayer,
    submodule,
)
from quantsearch.passes.transform.plain import plain_layer
from quantsearch.passes.transform.pool_layout import MaxPoolLayout
from quantsearch.passes.transform.quantize import _apply, node_info, plan_targets
from quantsearch.passes.transform.resolve import resolve
from quantsearch.passes.transform.resolved import ResolvedConfig

__all__ = ["PreparedModel"]


class _Structure:
    """One quantized module and, per quantized node, where its module sits."""

    def __init__(self, gm: fx.GraphModule, qgm: fx.GraphModule) -> None:
        self.qgm = qgm
        self.pairs = list(zip(gm.graph.nodes, qgm.graph.nodes, strict=True))
        self.current: dict[str, Any] = {}  # module target -> the LayerQuant it holds now


class PreparedModel:
    """``gm`` prepared for many configs: :meth:`apply_` gives what ``quantize(gm, config)`` gives.

    Args:
        gm: the traced float model; read, never modified.
        calibration: activation ranges for ``"auto"`` activation fields.
        memo_bytes: the most bytes of quantized weights kept for reuse; the least recently
            used go first (a large model with many formats must not hold them all).
        structures: the most prepared modules kept (one per graph structure met), least
            recently used dropped first; a search's configs usually share one.
        pools: route the prepared modules' float 2-D max pooling through a
            :class:`.pool_layout.MaxPoolLayout` (the same values, in the faster layout; not for
            a latency measurement, which must time the model as ``quantize`` builds it).

    Example:
        >>> import torch
        >>> from quantsearch.graph import trace
        >>> from quantsearch.passes.transform import quantize
        >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(4, 2)).eval(), torch.ones(3, 4))
        >>> pm, x = PreparedModel(gm), torch.randn(5, 4)
        >>> for w in (4, 8, 4):
        ...     rc = ResolvedConfig.from_dict({"_0": {"weight": {"format": "fixed", "width": w, "frac_width": 2}}})
        ...     assert torch.equal(pm.apply_(rc)(x), quantize(gm, rc)(x))
    """

    def __init__(
        self,
        gm: fx.GraphModule,
        calibration: CalibrationStats | None = None,
        *,
        memo_bytes: int = 256 * 2**20,
        structures: int = 4,
        pools: bool = False,
    ) -> None:
        self.gm = gm
        self.pools = MaxPoolLayout() if pools else None
        self.calibration = calibration
        self.memo_bytes, self.max_structures = memo_bytes, structures
        self._structures: OrderedDict[Any, _Structure] = OrderedDict()
        self._weights: OrderedDict[tuple[str, str, NumberFormat | None], nn.Parameter]
        self._weights = OrderedDict()
        self._held = 0  # bytes in _weights

    def apply_(self, config: Any) -> fx.GraphModule:
        """The prepared module configured as ``config`` (a ``QuantizeConfig`` or
        ``ResolvedConfig``); valid until the next call, which reconfigures it."""
        if not isinstance(config, ResolvedConfig):
            config = resolve(self.gm, config, calibration=self.calibration)
        resolved = config.bind(self.gm, self.calibration)
        if self.gm.training:
            return _apply(self.gm, resolved)
        targets = plan_targets(self.gm, resolved)
        plan = (targets, tuple(resolved.get(n.name) is not None for n in self.gm.graph.nodes))
        st = self._structures.get(plan)
        if st is not None:
            self._structures.move_to_end(plan)
        else:
            while len(self._structures) >= self.max_structures:
                self._structures.popitem(last=False)
            # lazy: a structure's first config may only be priced (metrics/static.py), not run
            qgm = _apply(self.gm, resolved, lazy=True)
            if self.pools is not None:
                self.pools.attach(qgm)
            st = self._structures[plan] = _Structure(self.gm, qgm)
            for (old, _), target in zip(st.pairs, targets, strict=True):
                if target is not None:
                    st.current.setdefault(target, resolved.get(old.name))
            return st.qgm
        self._fill(st, resolved)
        return st.qgm

    def _fill(self, st: _Structure, resolved: ResolvedConfig) -> None:
        qgm, gm = st.qgm, self.gm
        for old, new in st.pairs:
            lq = resolved.get(old.name)
            ni = info(old)
            precision = dict(ni.precision) if lq is None else dict(lq.items())
            module = submodule(qgm, str(new.target)) if new.op == "call_module" else None
            if lq is not None and module is not None:
                target = str(new.target)
                if st.current.get(target) != lq or not _deterministic(lq):
                    pristine = (
                        plain_layer(submodule(gm, str(old.target)))
                        if old.op == "call_module"
                        else None
                    )
                    st.current.pop(target, None)  # a failure half-way leaves it unknown
                    module = self._set(qgm, old, target, module, pristine, lq)
                    st.current[target] = lq
            new.meta[META_KEY] = node_info(ni, new, module, precision)

    def _set(
        self,
        qgm: fx.GraphModule,
        node: fx.Node,
        target: str,
        module: nn.Module,
        pristine: nn.Module | None,
        lq: LayerQuant,
    ) -> nn.Module:
        """Fill ``module``'s slots with ``lq``; a module kind without slots is rebuilt."""
        if isinstance(module, QuantParamFunction):  # rounds the weights it reads itself
            module.set_formats(lq)
            return module
        if isinstance(module, QuantFunction):
            module.q_data_in = lq.format("data_in")
            module.q_data_out = lq.format("data_out")
            return module
        if isinstance(module, _QuantLayer) and pristine is not None:
            folds = isinstance(module, _QuantBatchNorm)  # its formats quantize the fold
            if not folds:
                for role in PARAM_ROLES:
                    p = pristine._parameters.get(role)
                    if p is not None:
                        module._parameters[role] = self._weight(target, role, p, lq.format(role))
            module._set_formats(lq, on_grid=not folds)
            return module
        built = QUANTIZERS.get(info(node).op_kind).build(node, pristine, lq, False)
        built.train(False)
        owner, _, name = target.rpartition(".")
        (submodule(qgm, owner) if owner else qgm)._modules[name] = built
        return built

    def _weight(self, target: str, role: str, p: Tensor, fmt: NumberFormat | None) -> nn.Parameter:
        """``p`` quantized to ``fmt``, memoised per (module, role, format) for this model."""
        key = (target, role, fmt)
        hit = self._weights.get(key)
        if hit is not None:
            self._weights.move_to_end(key)
            return hit
        value = p.detach().clone() if fmt is None else fmt.quantize(p.detach())
        param = nn.Parameter(value, requires_grad=p.requires_grad)
        size = value.numel() * value.element_size()
        if (fmt is None or fmt.deterministic) and size <= self.memo_bytes:
            # stochastic rounding draws anew, as quantize does: never memoised
            while self._held + size > self.memo_bytes:
                _, old = self._weights.popitem(last=False)
                self._held -= old.numel() * old.element_size()
            self._weights[key] = param
            self._held += size
        return param


def _deterministic(lq: LayerQuant) -> bool:
    return all(f.deterministic for _, f in lq.items() if isinstance(f, NumberFormat))
