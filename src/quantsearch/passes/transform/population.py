"""Many configs of one traced model in one pass over the graph, each exactly as alone.

A search that knows its configs in advance (brute force, a comparison's ground truth) would
otherwise configure the model and run the whole graph once per config. :class:`Population`
walks the graph once for a whole population and computes each node once per *distinct* input:
a node's value for a config is keyed by that node's :class:`~.layer.LayerQuant` in the config
and by which values its inputs hold, so configs that agree on everything upstream of a node
share its result (every config shares the unquantized prefix; a layer that only four formats
reach is run four times, not sixteen). A layer module's ``data_in`` quantization, the first
step of its forward (``_q(q_data_in, x)`` in every ``_QuantLayer``), is applied apart, once
per distinct input and format, and the layer then runs without it on that value.

Exactness, by construction rather than by a bound: each distinct value is computed by the same
call the one-at-a-time path makes, on a tensor holding the same values: the module
``quantize(gm, config)`` builds for that node and config (weights rounded once, as the slot
path does; ``tests/passes/transform/test_slots.py`` proves the slot path equal to
``quantize``), or the node's own function. Nothing is batched along a config dimension, so no
kernel sees a shape, a layout or a summation order the single path does not (a ``bmm`` over
stacked weights could sum in another order and differ in the last bit; this never does), and
the outputs are ``torch.equal`` to ``PreparedModel.apply_(config)(x)`` for every format.

What it refuses (:func:`population_refusal` says why; the caller then evaluates one at a time):
a graph in training mode (weights would be quantized per forward pass), a format with
stochastic rounding (each call draws anew), a ``get_attr`` that reads inside a quantized
module (``quantize`` rebinds it to the copy), and an op that works in place (``x.add_(y)``,
``inplace=True``: a value several configs share would change under the others).

Example:
    >>> import torch
    >>> from quantsearch.graph import trace
    >>> from quantsearch.passes.transform import ResolvedConfig, quantize
    >>> gm = trace(torch.nn.Sequential(torch.nn.Linear(4, 2), torch.nn.ReLU()).eval(), torch.ones(3, 4))
    >>> fx8 = {"format": "fixed", "width": 8, "frac_width": 4}
    >>> rcs = [ResolvedConfig.from_dict({"_0": {"weight": dict(fx8, width=w)}}) for w in (4, 8)]
    >>> x = torch.randn(5, 4)
    >>> outs = Population(gm).forward(rcs, x)
    >>> all(torch.equal(o, quantize(gm, rc)(x)) for o, rc in zip(outs, rcs))
    True
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
from torch import fx, nn

from quantsearch.formats import NumberFormat
from quantsearch.graph import info
from quantsearch.passes.transform.calibrate import CalibrationStats
from quantsearch.passes.transform.layer import LayerQuant
from quantsearch.passes.transform.modules import QUANTIZERS, _QuantLayer, submodule
from quantsearch.passes.transform.resolved import ResolvedConfig

__all__ = ["Population", "population_refusal"]

_CALLS = ("call_module", "call_function", "call_method")


def population_refusal(gm: fx.GraphModule, bound: Sequence[ResolvedConfig]) -> str | None:
    """Why ``bound`` (configs already bound to ``gm``) cannot run as a population, or ``None``."""
    if gm.training:
        return "the graph is in training mode"
    quantized: set[str] = set()
    for rc in bound:
        for node in gm.graph.nodes:
            lq = rc.get(node.name)
            if lq is None:
                continue
            if any(isinstance(f, NumberFormat) and not f.deterministic for _, f in lq.items()):
                return f"node {node.name!r} has a format with stochastic rounding"
            if node.op == "call_module":
                quantized.add(str(node.target))
    for node in gm.graph.nodes:
        target = str(node.target)
        if node.op == "get_attr" and any(target.startswith(t + ".") for t in quantized):
            return f"get_attr {target!r} reads inside a quantized module"
        if _in_place(gm, node):
            return f"node {node.name!r} works in place (a value configs share would change)"
    return None


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


class Population:
    """``gm`` run for a population of configs at once; see the module docstring.

    Args:
        gm: the traced float model in eval mode; read, never modified.
        calibration: activation ranges for ``"auto"`` activation fields.
        modules: the most quantized modules kept between calls (one per node and distinct
            config of that node), least recently used dropped first.
    """

    def __init__(
        self,
        gm: fx.GraphModule,
        calibration: CalibrationStats | None = None,
        *,
        modules: int = 4096,
    ) -> None:
        self.gm = gm
        self.calibration = calibration
        self.max_modules = modules
        self._modules: OrderedDict[tuple[str, LayerQuant], nn.Module] = OrderedDict()
        # (node, its LayerQuant) -> (data_in format, the rest) where it splits, else None
        self._splits: dict[tuple[str, LayerQuant], tuple[NumberFormat, LayerQuant] | None] = {}
        nodes = list(gm.graph.nodes)
        last: dict[fx.Node, int] = {}
        for i, node in enumerate(nodes):
            for arg in node.all_input_nodes:
                last[arg] = i
        # after node i, the values no later node reads: freed as the walk goes
        self._free: list[list[fx.Node]] = [[] for _ in nodes]
        for arg, i in last.items():
            self._free[i].append(arg)

    def bind(self, configs: Sequence[ResolvedConfig]) -> list[ResolvedConfig]:
        """Each config bound to the graph (``"auto"`` fields from the calibration)."""
        return [rc.bind(self.gm, self.calibration) for rc in configs]

    def forward(self, configs: Sequence[ResolvedConfig], x: torch.Tensor) -> list[Any]:
        """The model's output for each config on input ``x``, in order.

        Configs with equal values share one output object. Raises ``ValueError`` for a
        population :func:`population_refusal` refuses.
        """
        bound = self.bind(configs)
        why = population_refusal(self.gm, bound)
        if why is not None:
            raise ValueError(f"cannot evaluate as a population: {why}")
        return self.run(bound, x)

    def run(self, bound: Sequence[ResolvedConfig], x: torch.Tensor) -> list[Any]:
        """:meth:`forward` for configs already bound and checked (no checks repeated)."""
        k = len(bound)
        env: dict[fx.Node, tuple[list[Any], list[int]]] = {}
        out: list[Any] = []
        with torch.inference_mode():
            for i, node in enumerate(self.gm.graph.nodes):
                if node.op == "placeholder":
                    env[node] = ([x], [0] * k)
                elif node.op == "get_attr":
                    env[node] = ([_fetch(self.gm, str(node.target))], [0] * k)
                elif node.op == "output":
                    (result,) = node.args
                    out = [_substitute(result, env, c) for c in range(k)]
                else:
                    env[node] = self._node(node, bound, env)
                for done in self._free[i]:
                    env.pop(done, None)
        return out

    def _node(
        self,
        node: fx.Node,
        bound: Sequence[ResolvedConfig],
        env: dict[fx.Node, tuple[list[Any], list[int]]],
    ) -> tuple[list[Any], list[int]]:
        inputs = node.all_input_nodes
        values: list[Any] = []
        index: list[int] = []
        seen: dict[tuple[Any, ...], int] = {}
        quantized_in: dict[tuple[Any, ...], Any] = {}  # (format, input variant) -> its value
        for c, rc in enumerate(bound):
            lq = rc.get(node.name)
            ins = tuple(env[a][1][c] for a in inputs)
            split = self._split_input(node, lq)
            if split is not None:
                # data_in is the layer's first step: quantize each distinct input once, then
                # run the layer without it on that value (the same function of the same values)
                fmt, lq = split
                qkey = (fmt, ins)
                if qkey not in quantized_in:
                    quantized_in[qkey] = fmt.quantize(_value(env, inputs[0], c))
                key: tuple[Any, ...] = (lq, "data_in", qkey)
                arg_values = {inputs[0]: quantized_in[qkey]}
            else:
                key = (lq, *ins)
                arg_values = {a: _value(env, a, c) for a in inputs}
            v = seen.get(key)
            if v is None:
                v = seen[key] = len(values)
                values.append(self._call(node, lq, arg_values))
            index.append(v)
        return values, index

    def _split_input(
        self, node: fx.Node, lq: LayerQuant | None
    ) -> tuple[NumberFormat, LayerQuant] | None:
        """The ``data_in`` format to apply apart from the layer and the rest of ``lq``, where
        the layer's forward is ``_q(q_data_in, x)`` and then the rest (a :class:`_QuantLayer`:
        linear, conv, batch norm, ReLU module), else ``None``. Remembered per node and
        ``lq`` (a population asks once per config and node)."""
        if lq is None or node.op != "call_module" or len(node.all_input_nodes) != 1:
            return None
        key = (node.name, lq)
        if key in self._splits:
            return self._splits[key]
        fmt = lq.format("data_in")
        rest = dataclasses.replace(lq, data_in=None)  # the module the split path calls
        split = None
        if fmt is not None and isinstance(self._module(node, rest), _QuantLayer):
            split = (fmt, rest)
        if len(self._splits) >= self.max_modules:
            self._splits.clear()
        self._splits[key] = split
        return split

    def _call(self, node: fx.Node, lq: LayerQuant | None, values: dict[fx.Node, Any]) -> Any:
        """``node`` run with ``lq`` on its inputs' ``values``, as the quantized graph runs it."""
        args = fx.node.map_arg(node.args, values.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, values.__getitem__)
        assert isinstance(args, tuple) and isinstance(kwargs, dict)
        if lq is not None:
            return self._module(node, lq)(*args, **kwargs)
        if node.op == "call_module":
            return submodule(self.gm, str(node.target))(*args, **kwargs)
        if node.op == "call_method":
            self_obj, *rest = args
            return getattr(self_obj, str(node.target))(*rest, **kwargs)
        assert callable(node.target)
        return node.target(*args, **kwargs)

    def _module(self, node: fx.Node, lq: LayerQuant) -> nn.Module:
        """The module ``quantize`` builds for ``node`` under ``lq`` (eval mode), memoised."""
        key = (node.name, lq)
        hit = self._modules.get(key)
        if hit is not None:
            self._modules.move_to_end(key)
            return hit
        pristine = submodule(self.gm, str(node.target)) if node.op == "call_module" else None
        try:
            built = QUANTIZERS.get(info(node).op_kind).build(node, pristine, lq, False)
        except Exception as exc:  # say which pass and node, as quantize does
            exc.add_note(f"while quantizing node {node.name!r} ({info(node).op_kind})")
            raise
        built.train(False)
        while len(self._modules) >= self.max_modules:
            self._modules.popitem(last=False)
        self._modules[key] = built
        return built


def _value(env: dict[fx.Node, tuple[list[Any], list[int]]], node: fx.Node, c: int) -> Any:
    values, index = env[node]
    return values[index[c]]


def _substitute(result: Any, env: dict[fx.Node, tuple[list[Any], list[int]]], c: int) -> Any:
    return fx.node.map_arg(result, lambda a: _value(env, a, c))


def _fetch(gm: fx.GraphModule, target: str) -> Any:
    obj: Any = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj
