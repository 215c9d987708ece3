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

Exactness. Each distinct value is computed by the same call the one-at-a-time path makes, on
a tensor holding the same values: the module ``quantize(gm, config)`` builds for that node and
config (weights rounded once, as the slot path does; ``tests/passes/transform/test_slots.py``
proves the slot path equal to ``quantize``), or the node's own function. Two exceptions are
exact by arithmetic instead: a linear layer's variants whose inputs and weights lie on
fixed-point grids narrow enough that every summation order gives the exact dot product run
as one batched kernel (:mod:`.batched` states and checks the condition per batch of data,
else one call each), each variant getting a contiguous tensor of its own call's shape (or,
where the layer's value reaches only the graph's output through float ReLUs, the transpose
of a contiguous block: the classes-first layout the loss reads, equal values); and a
float ReLU on such outputs runs once on them all (``max(x, 0)`` is exact per element), as do
nearest fixed-point ``data_in`` formats of one input (:func:`.batched.quantize_inputs`). A float
2-D max pooling may run on a channels-last copy of its input (:mod:`.pool_layout`: the same
bits, faster on the CPU for many channels). Other nodes run per variant. So outputs are
``torch.equal`` to ``PreparedModel.apply_(config)(x)``.

What it refuses (:func:`population_refusal`, in :mod:`.population_refusal`, says why; the caller
then evaluates one at a time):
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
from collections.abc import Collection, Sequence
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import fx, nn

from quantsearch.formats import NumberFormat
from quantsearch.graph import info
from quantsearch.passes.transform.batched import (
    Blocks,
    Stacked,
    input_frac,
    linear_many,
    quantize_inputs,
    stack,
    stacked_views,
)
from quantsearch.passes.transform.calibrate import CalibrationStats
from quantsearch.passes.transform.grid_facts import LinearFacts, linear_facts_many
from quantsearch.passes.transform.layer import LayerQuant
from quantsearch.passes.transform.modules import QUANTIZERS, QuantLinear, _QuantLayer, submodule
from quantsearch.passes.transform.pool_layout import MaxPoolLayout
from quantsearch.passes.transform.population_refusal import (
    Columns,
    columns,
    population_refusal,
    refusal,
)
from quantsearch.passes.transform.resolved import ResolvedConfig

__all__ = ["Population", "population_refusal"]

_CALLS = ("call_module", "call_function", "call_method")
_T = TypeVar("_T")


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
        self._facts: dict[tuple[str, LayerQuant], LinearFacts | None] = {}  # batched.py's
        self._stacks: dict[tuple[Any, ...], tuple[tuple[LayerQuant, ...], Stacked | None]] = {}
        self._checked: dict[int, LayerQuant] = {}  # see refusal
        self._canon: dict[tuple[int, ...], LayerQuant] = {}  # see columns
        # (node, id(lq)) -> (lq, its split / its module): see _remember
        self._split_ids: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._module_ids: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._graph_why: dict[frozenset[str], str | None] = {}
        self._quantized: Collection[str] = ()  # nodes some config of the current run quantizes
        self.batched_calls = 0  # layer calls answered by one batched kernel (tests read it)
        self.pools = MaxPoolLayout()  # float 2-D max pooling in the faster layout
        nodes = list(gm.graph.nodes)
        last: dict[fx.Node, int] = {}
        for i, node in enumerate(nodes):
            for arg in node.all_input_nodes:
                last[arg] = i
        # after node i, the values no later node reads: freed as the walk goes
        self._free: list[list[fx.Node]] = [[] for _ in nodes]
        for arg, i in last.items():
            self._free[i].append(arg)

    def refusal(
        self, bound: Sequence[ResolvedConfig], by_node: Columns | None = None
    ) -> str | None:
        """:func:`population_refusal` of ``bound`` (``by_node``: its :meth:`columns`, where
        the caller has them), remembering the node configs found deterministic and what the
        graph refuses (the graph never changes)."""
        cols = self.columns(bound) if by_node is None else by_node
        return refusal(self.gm, cols, self._checked, self._graph_why)

    def columns(self, bound: Sequence[ResolvedConfig]) -> Columns:
        """:func:`.population_refusal.columns` of ``bound``, its equal node configs made
        one object across calls (see there): the memos below, by identity, then hit for a
        search's new configs of formats met before."""
        return columns(bound, self._canon)

    def bind(self, configs: Sequence[ResolvedConfig]) -> list[ResolvedConfig]:
        """Each config bound to the graph (``"auto"`` fields from the calibration)."""
        return [rc.bind(self.gm, self.calibration) for rc in configs]

    def forward(self, configs: Sequence[ResolvedConfig], x: torch.Tensor) -> list[Any]:
        """The model's output for each config on input ``x``, in order.

        Configs with equal values share one output object; an output may be a transposed
        view (a batched layer's, see the module docstring), equal in value to the single
        path's contiguous one. Raises ``ValueError`` for a population
        :func:`population_refusal` refuses.
        """
        bound = self.bind(configs)
        by_node = self.columns(bound)
        why = self.refusal(bound, by_node)
        if why is not None:
            raise ValueError(f"cannot evaluate as a population: {why}")
        return self.run(bound, x, by_node)

    def run(
        self, bound: Sequence[ResolvedConfig], x: torch.Tensor, by_node: Columns | None = None
    ) -> list[Any]:
        """:meth:`forward` for configs already bound and checked (no checks repeated);
        ``by_node``: their :meth:`columns`, where the caller has them."""
        k = len(bound)
        env: dict[fx.Node, tuple[list[Any], list[int]]] = {}
        out: list[Any] = []
        unset: list[LayerQuant | None] = [None] * k
        if by_node is None:
            by_node = self.columns(bound)
        self._quantized = by_node.keys()  # read by _loose during this run
        with torch.inference_mode():
            for i, node in enumerate(self.gm.graph.nodes):
                if node.op == "placeholder":
                    env[node] = ([x], [0] * k)
                elif node.op == "get_attr":
                    env[node] = ([_fetch(self.gm, str(node.target))], [0] * k)
                elif node.op == "output":
                    (result,) = node.args
                    if isinstance(result, fx.Node):  # one output: no structure to rebuild
                        values, index = env[result]
                        in_order = len(values) == k and index == list(range(k))
                        out = values if in_order else [values[v] for v in index]
                    else:
                        out = [_substitute(result, env, c) for c in range(k)]
                else:
                    env[node] = self._node(node, by_node.get(node.name, unset), env, unset)
                for done in self._free[i]:
                    env.pop(done, None)
        return out

    def _node(
        self,
        node: fx.Node,
        lqs: list[LayerQuant | None],
        env: dict[fx.Node, tuple[list[Any], list[int]]],
        unset: list[LayerQuant | None] | None = None,
    ) -> tuple[list[Any], list[int]]:
        """``node``'s distinct values and each config's index into them; ``lqs``: each
        config's :class:`LayerQuant` of ``node`` (``None``: float; ``lqs is unset``: every
        config's)."""
        inputs = node.all_input_nodes
        floats = lqs is unset or all(lq is None for lq in lqs)
        if floats and all(len(env[a][0]) == 1 for a in inputs):
            # every config runs the float node on the same values: once for all
            return [self._call(node, None, {a: env[a][0][0] for a in inputs})], [0] * len(lqs)
        if floats and len(inputs) == 1 and self._is_relu(node):
            # relu is exact per element whatever the lane (max(x, 0), NaN and -0.0 kept):
            # on variants that tile one tensor (a batched layer's outputs), run it once
            whole = stacked_views(env[inputs[0]][0])
            if whole is not None:
                return Blocks(torch.relu(whole)), env[inputs[0]][1]
        # Keys below use object ids for speed; every object keyed is held by `bound`, by
        # `splits` or by `canon` for the whole call, so no id is reused meanwhile. Equal
        # values share one key through `canon` (configs' equal LayerQuants, equal formats).
        canon: dict[Any, int] = {}  # a LayerQuant or format value -> its first object's id
        ids: dict[int, int] = {}  # id of an object -> id of its value's first object
        # id(lq) -> its split and the id of its data_in format's value (0: no split)
        splits: dict[int, tuple[tuple[NumberFormat, LayerQuant] | None, int]] = {}
        index: list[int] = []
        seen: dict[tuple[Any, ...], int] = {}
        quantized_in: dict[tuple[Any, ...], int] = {}  # (format, input variant) -> its slot
        q_values: list[Any] = []  # the distinct quantized inputs
        q_bits: list[int | None] = []  # each one's grid (batched.input_frac)
        q = 0
        layers: dict[int, tuple[LayerQuant, int]] = {}  # variant -> split layer, its input
        jobs: dict[int, tuple[LayerQuant | None, dict[fx.Node, Any]]] = {}  # the others
        columns = [env[a][1] for a in inputs]
        every_ins = zip(*columns, strict=True) if columns else [()] * len(lqs)
        for c, (lq, ins) in enumerate(zip(lqs, every_ins, strict=True)):
            i = id(lq)
            if i in splits:
                split, f = splits[i]
            else:
                split = self._split_input(node, lq)
                f = 0
                if split is not None:
                    fid = id(split[0])
                    f = ids.get(fid) or ids.setdefault(fid, canon.setdefault(split[0], fid))
                splits[i] = split, f
            if split is not None:
                # data_in is the layer's first step: quantize each distinct input once, then
                # run the layer without it on that value (the same function of the same values)
                fmt, rest = split
                qkey = (f, ins)
                hit = quantized_in.get(qkey)
                if hit is None:
                    q = quantized_in[qkey] = len(q_values)
                    q_values.append((fmt, _value(env, inputs[0], c)))  # quantized below
                    q_bits.append(input_frac(fmt))
                else:
                    q = hit
                key: tuple[Any, ...] = (id(rest), "data_in", q)  # rest: _splits' one object
            else:
                li = ids.get(i)
                if li is None:
                    li = ids[i] = canon.setdefault(lq, i)
                key = (li, *ins)
            v = seen.get(key)
            if v is None:
                v = seen[key] = len(seen)
                if split is not None:
                    layers[v] = (rest, q)
                else:
                    jobs[v] = (lq, {a: _value(env, a, c) for a in inputs})
            index.append(v)
        values: list[Any] = [None] * len(seen)
        q_values = quantize_inputs(q_values)  # all at once where one stacked op is exact
        if layers:
            got = self._layers(node, list(layers.values()), q_values, q_bits)
            if not jobs:  # every distinct value a layer's, in order (their Blocks kept)
                return got, index
            for v, y in zip(layers, got, strict=True):
                values[v] = y
        for v, (lq, arg_values) in jobs.items():
            values[v] = self._call(node, lq, arg_values)
        return values, index

    def _loose(self, node: fx.Node) -> bool:
        """Whether ``node``'s value reaches only the graph's output, through ReLUs every
        config of this run leaves float (exact per element whatever the layout): its
        variants may then be transposed views (:func:`.batched.linear_many`)."""
        for user in node.users:
            if user.op != "output" and (
                user.name in self._quantized or not self._is_relu(user) or not self._loose(user)
            ):
                return False
        return True

    def _is_relu(self, node: fx.Node) -> bool:
        """Whether ``node`` is a float ReLU (module, function, method; in-place ones refused)."""
        if node.op == "call_module":
            return type(submodule(self.gm, str(node.target))) is nn.ReLU
        if node.op == "call_method":
            return node.target == "relu"
        return node.op == "call_function" and node.target in (F.relu, torch.relu)

    def _layers(
        self,
        node: fx.Node,
        layers: list[tuple[LayerQuant, int]],
        q_values: list[Any],
        q_bits: list[int | None],
    ) -> list[Any]:
        """Each split layer variant ``(lq without data_in, which quantized input)`` run:
        batched where :func:`.batched.linear_many` proves it exact, else one call each."""
        inputs = node.all_input_nodes
        mods = [self._module(node, lq) for lq, _ in layers]
        if len(layers) > 1 and all(type(m) is QuantLinear for m in mods):
            got = linear_many(
                mods,  # type: ignore[arg-type]
                q_values,
                q_bits,
                self._stacked(node, layers, mods),
                classes_first=self._loose(node),
            )
            if got is not None:
                self.batched_calls += 1
                return got
        return [self._call(node, lq, {inputs[0]: q_values[q]}) for lq, q in layers]

    def _stacked(
        self, node: fx.Node, layers: list[tuple[LayerQuant, int]], mods: list[nn.Module]
    ) -> Stacked | None:
        """The variants' weights laid out for the batched kernel (:func:`.batched.stack`),
        kept per node, variants and inputs they read (a population's chunks meet the same
        ones batch after batch)."""
        key = (node.name, tuple(id(lq) for lq, _ in layers), tuple(q for _, q in layers))
        hit = self._stacks.get(key)
        if hit is not None and all(a is b for a, (b, _) in zip(hit[0], layers, strict=True)):
            return hit[1]
        keys = [(node.name, lq) for lq, _ in layers]
        kept = self._facts
        new = {k: m for k, m in zip(keys, mods, strict=True) if k not in kept}
        facts = dict(zip(new, linear_facts_many(list(new.values())), strict=True))
        if len(kept) + len(facts) > self.max_modules:
            kept.clear()
        kept.update(facts)  # the new variants' grids, read in one pass
        st = stack([facts[k] if k in facts else kept[k] for k in keys], [q for _, q in layers])
        if len(self._stacks) >= 8:  # each at most 32 MiB (batched.stack)
            self._stacks.pop(next(iter(self._stacks)))
        self._stacks[key] = (tuple(lq for lq, _ in layers), st)
        return st

    def _split_input(
        self, node: fx.Node, lq: LayerQuant | None
    ) -> tuple[NumberFormat, LayerQuant] | None:
        """The ``data_in`` format to apply apart from the layer and the rest of ``lq``, where
        the layer's forward is ``_q(q_data_in, x)`` and then the rest (a :class:`_QuantLayer`:
        linear, conv, batch norm, ReLU module), else ``None``. Remembered per node and
        ``lq`` (a population asks once per config and node)."""
        if lq is None or node.op != "call_module" or len(node.all_input_nodes) != 1:
            return None
        fast = self._split_ids.get((node.name, id(lq)))  # the same object: no hashing
        if fast is not None and fast[0] is lq:
            return fast[1]  # type: ignore[no-any-return]
        key = (node.name, lq)
        if key in self._splits:
            return _remember(self._split_ids, (node.name, id(lq)), lq, self._splits[key])
        fmt = lq.format("data_in")
        rest = dataclasses.replace(lq, data_in=None)  # the module the split path calls
        split = None
        if fmt is not None and isinstance(self._module(node, rest), _QuantLayer):
            split = (fmt, rest)
        if len(self._splits) >= self.max_modules:
            self._splits.clear()
        self._splits[key] = split
        return _remember(self._split_ids, (node.name, id(lq)), lq, split)

    def _call(self, node: fx.Node, lq: LayerQuant | None, values: dict[fx.Node, Any]) -> Any:
        """``node`` run with ``lq`` on its inputs' ``values``, as the quantized graph runs it."""
        args = fx.node.map_arg(node.args, values.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, values.__getitem__)
        assert isinstance(args, tuple) and isinstance(kwargs, dict)
        if lq is not None:
            return self._module(node, lq)(*args, **kwargs)
        if node.op == "call_module":
            return self.pools.call(node.name, submodule(self.gm, str(node.target)), args, kwargs)
        if node.op == "call_method":
            self_obj, *rest = args
            return getattr(self_obj, str(node.target))(*rest, **kwargs)
        assert callable(node.target)
        return self.pools.call(node.name, node.target, args, kwargs)

    def _module(self, node: fx.Node, lq: LayerQuant) -> nn.Module:
        """The module ``quantize`` builds for ``node`` under ``lq`` (eval mode), memoised."""
        fast = self._module_ids.get((node.name, id(lq)))  # the same object: no hashing
        if fast is not None and fast[0] is lq:
            return fast[1]  # type: ignore[no-any-return]
        key = (node.name, lq)
        hit = self._modules.get(key)
        if hit is not None:
            self._modules.move_to_end(key)
            return _remember(self._module_ids, (node.name, id(lq)), lq, hit)
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
        return _remember(self._module_ids, (node.name, id(lq)), lq, built)


def _remember(
    memo: dict[tuple[str, int], tuple[Any, Any]], key: tuple[str, int], obj: Any, value: _T
) -> _T:
    """``value`` kept under ``(node name, id(obj))`` with ``obj`` itself, which keeps the id
    ``obj``'s while the entry lives (looked up by identity: equal objects hash slowly)."""
    if len(memo) >= 4096:
        memo.clear()
    memo[key] = (obj, value)
    return value


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
