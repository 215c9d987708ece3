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

``matmul`` and ``bmm`` take any operands: a ``weight`` format rounds those that are parameters
(``x @ self.w.t()`` then computes as ``nn.Linear(bias=False)``), ``data_in`` the others, and
every operand when no ``weight`` format is set (as before there was a ``weight`` role). A
format rounds a tensor as the node reads it: the same for elementwise formats, while
``block_fp``'s blocks follow the layout read (a matmul's right operand is (in, out)).

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
from quantsearch.passes.analysis.tensors import (
    PARAM_ARGS,
    PARAM_VIEWS,
    WEIGHT_OPERAND_KINDS,
    param_source,
)
from quantsearch.passes.transform.layer import ROLES, LayerQuant, formats_repr

__all__ = [
    "PARAM_VIEWS",
    "QuantBmm",
    "QuantConv1dFunction",
    "QuantConv2dFunction",
    "QuantLinearFunction",
    "QuantMatmul",
    "QuantOperandsFunction",
    "QuantParamFunction",
    "build_operands_function",
    "operand",
    "operand_roles",
    "operand_tensor",
    "param_source",
]


def operand(node: fx.Node, role: str) -> Any:
    """The argument ``node`` reads in ``role`` (``weight``/``bias``): positional or keyword;
    ``None`` when not given (a matmul's weight: its first operand that is a parameter)."""
    kind = info(node).op_kind
    if kind in WEIGHT_OPERAND_KINDS:
        return next((a for a in node.args[:2] if param_source(a) is not None), None)
    for index, keyword, r in PARAM_ARGS.get(kind, ()):
        if r == role:
            return node.args[index] if len(node.args) > index else node.kwargs.get(keyword)
    return None


def operand_roles(node: fx.Node) -> tuple[frozenset[str], frozenset[str]]:
    """``(parameter roles, computed roles)`` of a function-form layer: the weight/bias roles
    whose operands are the model's parameters, and those whose operands are computed."""
    if info(node).op_kind in WEIGHT_OPERAND_KINDS:  # x @ self.w.t(): a weight; q @ k: none
        has = operand(node, "weight") is not None
        return frozenset({"weight"} if has else ()), frozenset(() if has else {"weight"})
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
    # operand -> (the tensor read, its version, format, rounded value): see the module doc
    _rounded: dict[str, tuple[Tensor, tuple[Any, ...], NumberFormat, Tensor]]

    def __init__(self, fn: Callable[..., Any], lq: LayerQuant) -> None:
        super().__init__()
        self.fn = fn
        self.set_formats(lq)

    def set_formats(self, lq: LayerQuant) -> None:
        """Take ``lq``'s formats (a prepared model refills them per config)."""
        for role in ROLES:
            self.__dict__["q_" + role] = lq.format(role)
        self.__dict__["_rounded"] = {}

    def _round(self, key: str, fmt: NumberFormat, w: Tensor) -> Tensor:
        if self.training or not fmt.deterministic or (w.requires_grad and torch.is_grad_enabled()):
            return fmt.quantize(w)
        # The same tensor, unchanged: in place (its version), by .to()/.double() (which swap
        # its storage), and in the same inference_mode (an inference tensor serves only it).
        state = (w.data_ptr(), w._version, w.dtype, w.device, torch.is_inference_mode_enabled())
        hit = self._rounded.get(key)
        if hit is not None and hit[0] is w and hit[1] == state and hit[2] == fmt:
            return hit[3]
        value = fmt.quantize(w.detach())
        self._rounded[key] = (w, state, fmt, value)
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
        name = getattr(self.fn, "__name__", repr(self.fn))
        return ", ".join(x for x in (name, formats_repr(self)) if x)


class QuantLinearFunction(QuantParamFunction):
    op_kind = "linear"


class QuantConv1dFunction(QuantParamFunction):
    op_kind = "conv1d"


class QuantConv2dFunction(QuantParamFunction):
    op_kind = "conv2d"


class QuantOperandsFunction(QuantParamFunction):
    """``matmul``/``bmm``: ``data_in`` rounds every tensor operand, except that a ``weight``
    format, when set, rounds those that are the model's parameters (``weights``: their
    positions) instead: ``x @ self.w.t()`` as ``nn.Linear(bias=False)`` computes it."""

    def __init__(self, fn: Callable[..., Any], lq: LayerQuant, weights: tuple[int, ...]) -> None:
        super().__init__(fn, lq)
        self.weights = weights

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        q_in, q_w = self.q_data_in, self.q_weight
        args_ = list(args)
        for i, a in enumerate(args_):
            if isinstance(a, Tensor):
                if q_w is not None and i in self.weights:
                    args_[i] = self._round(f"weight{i}", q_w, a)
                elif q_in is not None:
                    args_[i] = q_in.quantize(a)
        if q_in is not None:
            kwargs = {
                k: q_in.quantize(v) if isinstance(v, Tensor) else v for k, v in kwargs.items()
            }
        y = self.fn(*args_, **kwargs)
        return y if self.q_data_out is None else self.q_data_out.quantize(y)


class QuantMatmul(QuantOperandsFunction):
    op_kind = "matmul"


class QuantBmm(QuantOperandsFunction):
    op_kind = "bmm"


def build_operands_function(
    cls: type[QuantOperandsFunction],
) -> Callable[[fx.Node, nn.Module | None, LayerQuant, bool], nn.Module]:
    """The builder of a matmul/bmm node (or of its module, quantized again)."""

    def build(node: fx.Node, module: nn.Module | None, lq: LayerQuant, training: bool) -> nn.Module:
        if isinstance(module, QuantParamFunction):
            fn: Callable[..., Any] = module.fn
        elif node.op == "call_method":
            fn = getattr(torch.Tensor, str(node.target))
        else:
            assert callable(node.target)
            fn = node.target
        weights = tuple(i for i, a in enumerate(node.args[:2]) if param_source(a) is not None)
        return cls(fn, lq, weights)

    return build


FUNCTION_LAYERS: dict[str, type[QuantParamFunction]] = {
    c.op_kind: c for c in (QuantLinearFunction, QuantConv1dFunction, QuantConv2dFunction)
}
