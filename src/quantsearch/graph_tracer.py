"""torch.fx's symbolic tracing as :func:`quantsearch.graph.trace` runs it.

Eight things differ from ``fx.symbolic_trace``:

- a module declaring its ``op_kind`` (quantized layers do) is a leaf, so a quantized model
  traces to the same nodes as its float original;
- a model whose forward gives a buffer a traced size (``self.pe[:, : x.size(1)]``,
  ``self.idx.expand(x.size(0), -1)``) is traced with its buffers as proxies;
- the arguments of ``forward`` the example inputs leave out are traced at their defaults (see
  :func:`symbolic_trace`);
- what forward computes with gradients off is detached where the rest reads it
  (:func:`detach_no_grad`);
- ``torch.zeros(x.size(0), 4)`` and torch's other factories of a traced size are graph nodes
  (fx refused them), and the parts of a chunk or split of a stated count iterate;
- torch.autocast inside forward is refused (fx would drop it: the graph would compute in
  float32 what the model computes in a lower precision);
- a ``torch.compile``'d or DataParallel-wrapped model is traced as the module it wraps
  (:func:`compiled_module`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import operator
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import fx, nn
from torch.fx._symbolic_trace import _assert_is_none

__all__ = ["ADDED_DETACH", "NO_GRAD", "compiled_module", "detach_no_grad", "symbolic_trace"]


_CHECKS = (_assert_is_none, torch._assert, operator.eq)  # fx's checks of a concrete argument


# node.meta key of a node traced while forward had gradients off (torch.no_grad(),
# torch.inference_mode(), torch.set_grad_enabled(False) inside forward)
NO_GRAD = "quantsearch_no_grad"
# node.meta key of the detach trace adds after such a node (not a detach of the user's own)
ADDED_DETACH = "quantsearch_added_detach"


class _Tracer(fx.Tracer):
    """fx's tracer: quantized layers (a class attribute ``op_kind``) and TorchScript modules
    (fx traced a scripted one into a call on its C++ object, without its parameters) are
    leaves; a node made while forward turned gradients off is marked (``NO_GRAD``: fx records
    no grad mode), one made under an autocast forward turned on is refused; a chunk or split
    of a stated count iterates (its proxies know their ``len``)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if isinstance(getattr(type(m), "op_kind", None), str):
            return True
        if isinstance(m, torch.jit.ScriptModule):  # fx would call its C++ object's forward
            return True
        return super().is_leaf_module(m, module_qualified_name)

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _Proxy(node, self)

    def iter(self, obj: fx.Proxy) -> Iterator[fx.Proxy]:
        """The parts of a chunk or split whose count the call states (``list(x.chunk(3))``,
        ``for p in torch.split(x, [2, 4])``); fx iterates only an unpacking (``a, b = ...``).
        A chunk of fewer parts than asked fails the example run, naming the node."""
        count = _parts(obj.node)
        if count is None:
            return super().iter(obj)
        return iter(
            [
                self.create_proxy("call_function", operator.getitem, (obj, i), {})
                for i in range(count)
            ]
        )

    def trace(self, root: Any, concrete_args: dict[str, Any] | None = None) -> fx.Graph:
        self._autocast = _autocast_state()
        return super().trace(root, concrete_args)

    def create_node(self, *args: Any, **kwargs: Any) -> fx.Node:
        if _autocast_state() != self._autocast:
            raise ValueError(
                "got torch.autocast inside forward, which a graph does not record (its layers "
                "would run in float32 where the model's run in a lower precision), allowed: "
                "a forward without torch.autocast (cast the model and data with .to(dtype))"
            )
        node = super().create_node(*args, **kwargs)
        # a parameter read is no computation, and fx reuses its node for every later read
        if not torch.is_grad_enabled() and node.op not in ("get_attr", "placeholder"):
            node.meta[NO_GRAD] = True
        return node


def _parts(node: fx.Node) -> int | None:
    """How many tensors a chunk, split or tensor_split call returns, where its arguments say."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    if node.op not in ("call_method", "call_function") or name not in _SPLITS:
        return None
    position, keyword = _SPLITS[name]
    given = node.args[position] if len(node.args) > position else node.kwargs.get(keyword)
    if name == "split":  # a size per part only when a list of sizes
        return len(given) if isinstance(given, (list, tuple)) else None
    if name == "tensor_split" and isinstance(given, (list, tuple)):
        return len(given) + 1  # the indices to split at
    return given if isinstance(given, int) and not isinstance(given, bool) else None


def _autocast_state() -> tuple[bool, ...]:
    """Whether autocast is on for each device type forward could use."""
    try:
        return tuple(torch.is_autocast_enabled(d) for d in ("cpu", "cuda"))
    except TypeError:  # torch before 2.4 takes no device type
        return (torch.is_autocast_cpu_enabled(), torch.is_autocast_enabled())


class _Proxy(fx.Proxy):
    """fx's Proxy whose ``len()`` is known for a chunk or split of a stated count (``list()``
    asks for it before iterating)."""

    def __len__(self) -> int:
        count = _parts(self.node)
        return super().__len__() if count is None else count


# the argument that says how many parts: (position after the tensor, keyword)
_SPLITS = {"chunk": (1, "chunks"), "split": (1, "split_size_or_sections"),
           "tensor_split": (1, "indices_or_sections")}  # fmt: skip


def compiled_module(model: nn.Module) -> nn.Module:
    """The module ``torch.compile`` wrapped (an ``OptimizedModule``'s ``_orig_mod``: fx
    cannot trace the wrapper, whose forward is dynamo's) or nn.DataParallel /
    DistributedDataParallel wraps (``.module``: their forward scatters the inputs, which fx
    cannot iterate; one device's computation is the module's), else ``model`` itself."""
    while True:
        inner = model._modules.get("_orig_mod")
        if type(model).__name__ == "OptimizedModule" and isinstance(inner, nn.Module):
            model = inner
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def detach_no_grad(gm: fx.GraphModule, *example_inputs: Any) -> bool:
    """Detach each tensor that forward computed without gradients where a node computed with
    them reads it, as autograd would not have recorded it: a backbone frozen under
    ``with torch.no_grad():`` stays frozen when the graph is fine-tuned. The example inputs
    (copied) tell tensors from sizes and tuples (a tuple's items read outside are detached).
    Run before the graph is annotated; returns whether a node was added."""
    frozen = [n for n in gm.graph.nodes if n.meta.get(NO_GRAD)]
    if not frozen:
        return False
    for n in gm.graph.nodes:  # a frozen tuple's items, taken outside: frozen as well
        if n.target is operator.getitem and n.args and n.args[0] in frozen and n not in frozen:
            frozen.append(n)
    values: dict[fx.Node, Any] = {}

    class _Record(fx.Interpreter):
        def run_node(self, n: fx.Node) -> Any:
            values[n] = super().run_node(n)
            return values[n]

    modes = {m: m.training for m in gm.modules()}
    gm.eval()
    try:
        with torch.no_grad():
            _Record(gm).run(
                *(t.clone() if isinstance(t, torch.Tensor) else t for t in example_inputs)
            )
    except Exception:
        return False  # the example does not run: annotate names the node
    finally:
        for m, mode in modes.items():
            m.training = mode
    added = False
    for n in frozen:
        outside = [u for u in n.users if u not in frozen]
        if outside and isinstance(values.get(n), torch.Tensor):
            with gm.graph.inserting_after(n):
                detached = gm.graph.call_method("detach", (n,))
            detached.meta[ADDED_DETACH] = True
            for u in outside:
                u.replace_input_with(n, detached)
            added = True
    if added:
        gm.recompile()
    return added


# torch's factories whose size may be traced (torch.zeros(x.size(0), 4)): fx's Proxy cannot
# stand in an int list, so torch raised 'zeros() takes 1 positional argument but 2 were given'
_FACTORIES = ("zeros", "ones", "empty", "full", "eye", "rand", "randn", "randint")


@contextlib.contextmanager
def _factories_traced() -> Iterator[None]:
    """While tracing, a call of one of torch's ``_FACTORIES`` given a traced value (a size, a
    device) becomes a graph node, so the graph makes the tensor at the batch's size."""
    originals = {name: getattr(torch, name) for name in _FACTORIES}

    def traced(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            found: list[fx.Proxy] = []
            fx.node.map_aggregate(
                (args, kwargs), lambda v: found.append(v) if isinstance(v, fx.Proxy) else None
            )
            if found:
                return found[0].tracer.create_proxy("call_function", fn, args, kwargs)
            return fn(*args, **kwargs)

        return call

    try:
        for name, fn in originals.items():
            setattr(torch, name, traced(fn))
        yield
    finally:
        for name, fn in originals.items():
            setattr(torch, name, fn)


def _defaults_left_out(model: nn.Module, given: int) -> dict[str, Any]:
    """The arguments of ``model.forward`` after the first ``given`` that have defaults, with
    those defaults; none where a required one is left out (the caller refuses that) or more
    are given than ``forward`` takes."""
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a builtin forward)
        return {}
    if any(p.kind is p.VAR_POSITIONAL for p in params[:given]):
        return {}
    named = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    rest = named[given:]
    if len(named) < given or any(p.default is p.empty for p in rest):
        return {}
    # a tensor default stays an input with its default, as fx traces it
    return {p.name: p.default for p in rest if not isinstance(p.default, torch.Tensor)}


def _drop_specialized(graph: fx.Graph, given: int, names: set[str]) -> None:
    """Remove the inputs fx keeps for ``concrete_args`` (the arguments ``names``, named
    ``mask_1`` for ``mask``; after the ``given`` inputs, but before ``*args``/``**kwargs``
    whatever the signature's order) and the checks it runs on them
    (``_assert_is_none(mask)``, ``torch._assert(flag == False)``): nothing else reads them,
    and the graph then takes the inputs the examples give, as the model is run."""
    inputs = [n for n in graph.nodes if n.op == "placeholder"][given:]
    dead = [n for n in inputs if re.sub(r"_\d+$", "", str(n.target)) in names]
    stack, seen = list(dead), set(dead)
    while stack:
        for user in stack.pop().users:
            if user not in seen:
                seen.add(user)
                stack.append(user)
    checks = seen - set(dead)
    if any(n.op != "call_function" or n.target not in _CHECKS for n in checks):
        return  # a specialized input read otherwise: leave the graph as fx made it
    for n in reversed(list(graph.nodes)):
        if n in seen:
            graph.erase_node(n)


def symbolic_trace(model: nn.Module, given: int | None = None) -> fx.GraphModule:
    """``model``'s graph, its modules in the mode they are in.

    With ``given`` (the number of example inputs), the arguments of ``forward`` after them
    that have defaults (``mask=None``, ``return_features=False``, a keyword-only scale) are
    traced at those defaults, as torch.fx's ``concrete_args`` does, and the graph takes the
    given inputs alone: traced as inputs, ``if mask is not None`` would take the branch the
    model does not take on x alone, and ``if return_features:`` is control flow fx refuses.

    fx hands a buffer to ``forward`` as the tensor itself, so a buffer sliced or expanded by a
    traced size (the positional-encoding table ``self.pe[:, : x.size(1)]``) raises a
    TypeError. Such a model is traced a second time with its buffers as proxies
    (``get_attr`` nodes, as parameters are): not first, since a buffer read as a Python value
    (``if self.flag:``, ``self.idx.tolist()``) traces only as a tensor. Where both fail, the
    first error is raised.
    """
    concrete = _defaults_left_out(model, given) if given is not None else {}
    tracer = _Tracer()
    try:
        # a caller's no_grad would mark every node NO_GRAD
        with torch.enable_grad(), _factories_traced():
            graph = tracer.trace(model, concrete_args=concrete or None)
    except Exception as first:
        tracer = _Tracer()
        tracer.proxy_buffer_attributes = True
        try:
            with torch.enable_grad(), _factories_traced():
                graph = tracer.trace(model, concrete_args=concrete or None)
        except Exception:
            raise first from None
    if concrete:
        _drop_specialized(graph, given or 0, set(concrete))
    return fx.GraphModule(tracer.root, graph, type(model).__name__)
