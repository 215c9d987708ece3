"""Function-form layers: ``F.linear``, ``F.conv1d`` and ``F.conv2d`` called with a model's own
parameters, quantized as their module forms are.

A user model that holds its parameters itself and calls ``F.linear(x, self.w, self.b)`` traces
to a ``call_function`` node whose weight and bias operands are ``get_attr`` nodes. It has the
roles of ``nn.Linear`` (``data_in``, ``weight``, ``bias``, ``data_out``) and the same
arithmetic, ``q_out(F.linear(q_in(x), q_weight(w), q_bias(b)))``, so a function-form model and
its module twin with the same weights give equal outputs under every format.

An operand is a *parameter* when it is a tensor the model holds, fetched by ``get_attr`` and
read directly or through views that keep every element (``self.w.t()``, ``self.w.view(...)``).
An operand computed in forward (``self.w * 2``, another layer's output) is not: a ``by_name``
table that sets its role is refused, and ``by_type``, regex and ``default`` tables skip it as
they skip the bias of a layer built with ``bias=False``.

Weights are rounded in the forward pass, from the tensor the node reads (the model's copy of
the parameter, wherever it is tied), with straight-through gradients in training mode. In eval
mode a rounded weight is kept while the node reads the same, unchanged tensor in a
deterministic format, so a search's batches round it once.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any, ClassVar

import torch
from torch import Tensor, fx, nn

from quantsearch.formats import NumberFormat
from quantsearch.graph import info
from quantsearch.passes.analysis.tensors import PARAM_ARGS, VIEW_ATTRS
from quantsearch.passes.transform.layer import ROLES, LayerQuant

__all__ = [
    "PARAM_VIEWS",
    "QuantConv1dFunction",
    "QuantConv2dFunction",
    "QuantLinearFunction",
    "QuantParamFunction",
    "operand",
    "operand_roles",
    "operand_tensor",
    "param_source",
]

# Ops that read a parameter without computing anything: every element, moved or not.
PARAM_VIEWS = frozenset(
    {
        "t",
        "transpose",
        "permute",
        "reshape",
        "view",
        "flatten",
        "unsqueeze",
        "squeeze",
        "contiguous",
    }
)


def operand(node: fx.Node, role: str) -> Any:
    """The argument ``node`` reads in ``role`` (``weight``/``bias``): positional or keyword;
    ``None`` when not given."""
    for index, keyword, r in PARAM_ARGS.get(info(node).op_kind, ()):
        if r == role:
            return node.args[index] if len(node.args) > index else node.kwargs.get(keyword)
    return None


def param_source(arg: Any) -> fx.Node | None:
    """The ``get_attr`` node whose tensor ``arg`` is, read directly or through views that keep
    every element (:data:`PARAM_VIEWS`); ``None`` for a tensor computed in forward."""
    n = arg
    while isinstance(n, fx.Node):
        if n.op == "get_attr":
            return n if info(n).outputs else None  # a tensor, not another attribute
        if n.op not in ("call_function", "call_method") or not n.args:
            return None
        kind = info(n).op_kind
        attr = n.args[1] if kind == "getattr" and len(n.args) > 1 else None
        if kind not in PARAM_VIEWS and attr not in VIEW_ATTRS:
            return None
        n = n.args[0]
    return None


def operand_roles(node: fx.Node) -> tuple[frozenset[str], frozenset[str]]:
    """``(parameter roles, computed roles)`` of a function-form layer: the weight/bias roles
    whose operands are the model's parameters, and those whose operands are computed."""
    params: set[str] = set()
    computed: set[str] = set()
    for _, _, role in PARAM_ARGS.get(info(node).op_kind, ()):
        arg = operand(node, role)
        if arg is None:
            continue  # no bias
        (params if param_source(arg) is not None else computed).add(role)
    return frozenset(params), frozenset(computed)


def operand_tensor(node: fx.Node, role: str) -> Tensor | None:
    """The parameter a function-form layer reads in ``role``, as the model holds it."""
    src = param_source(operand(node, role))
    gm = node.graph.owning_module
    if src is None or gm is None:
        return None
    value = attrgetter(str(src.target))(gm)
    return value if isinstance(value, Tensor) else None


class QuantParamFunction(nn.Module):
    """``fn(q_in(x), q_weight(w), q_bias(b), ...)`` then ``q_out``: a function-form layer."""

    op_kind: ClassVar[str] = ""
    q_data_in: NumberFormat | None
    q_weight: NumberFormat | None
    q_bias: NumberFormat | None
    q_data_out: NumberFormat | None
    # role -> (the tensor read, its version, format, rounded value): see the module doc
    _rounded: dict[str, tuple[Tensor, int, NumberFormat, Tensor]]

    def __init__(self, fn: Callable[..., Any], lq: LayerQuant) -> None:
        super().__init__()
        self.fn = fn
        self.set_formats(lq)

    def set_formats(self, lq: LayerQuant) -> None:
        """Take ``lq``'s formats (a prepared model refills them per config)."""
        for role in ROLES:
            self.__dict__["q_" + role] = lq.format(role)
        self.__dict__["_rounded"] = {}

    def _round(self, role: str, fmt: NumberFormat, w: Tensor) -> Tensor:
        if self.training or not fmt.deterministic or (w.requires_grad and torch.is_grad_enabled()):
            return fmt.quantize(w)
        hit = self._rounded.get(role)
        if hit is not None and hit[0] is w and hit[1] == w._version and hit[2] == fmt:
            return hit[3]
        value = fmt.quantize(w.detach())
        self._rounded[role] = (w, w._version, fmt, value)
        return value

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        args_ = list(args)
        for index, keyword, role in ((0, "input", "data_in"), *PARAM_ARGS[self.op_kind]):
            fmt: NumberFormat | None = getattr(self, "q_" + role)
            at_index = len(args_) > index
            value = args_[index] if at_index else kwargs.get(keyword)
            if fmt is None or not isinstance(value, Tensor):
                continue
            value = fmt.quantize(value) if role == "data_in" else self._round(role, fmt, value)
            if at_index:
                args_[index] = value
            else:
                kwargs[keyword] = value
        y = self.fn(*args_, **kwargs)
        return y if self.q_data_out is None else self.q_data_out.quantize(y)

    def extra_repr(self) -> str:
        formats = [f"{r}={getattr(self, 'q_' + r)}" for r in ROLES if getattr(self, "q_" + r)]
        return ", ".join([getattr(self.fn, "__name__", repr(self.fn)), *formats])


class QuantLinearFunction(QuantParamFunction):
    op_kind = "linear"


class QuantConv1dFunction(QuantParamFunction):
    op_kind = "conv1d"


class QuantConv2dFunction(QuantParamFunction):
    op_kind = "conv2d"


FUNCTION_LAYERS: dict[str, type[QuantParamFunction]] = {
    c.op_kind: c for c in (QuantLinearFunction, QuantConv1dFunction, QuantConv2dFunction)
}
