"""Quantized modules and the registry of what can be quantized: one builder per op kind.

Each quantized layer subclasses the float layer it replaces (``QuantLinear`` is an
``nn.Linear``), keeps every parameter and buffer under its original name and shape, and
declares ``op_kind`` so :func:`quantsearch.graph.op_kind_of` still calls it ``linear``.

Weights: a module built from a model in eval mode holds its ``weight``/``bias`` already rounded
onto the grid, quantized once at transform time; a module built (or used) in training mode
keeps float master weights and quantizes them in every forward pass, with straight-through
gradients, so quantization-aware training works. Activations (``data_in``, ``data_out``) are
quantized in every forward pass.

A new quantizable op costs one builder registered here with :data:`QUANTIZERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn

from quantsearch.errors import ConfigError
from quantsearch.formats import NumberFormat
from quantsearch.graph import PARAM_ORIGINS
from quantsearch.passes.transform.functional import (
    FUNCTION_LAYERS,
    QuantBmm,
    QuantMatmul,
    QuantParamFunction,
    build_operands_function,
)
from quantsearch.passes.transform.layer import (
    ACTIVATION_ROLES,
    PARAM_ROLES,
    ROLES,
    LayerQuant,
    formats_repr,
)
from quantsearch.passes.transform.plain import plain_layer
from quantsearch.registry import Registry

__all__ = [
    "QUANTIZERS",
    "QuantAdd",
    "QuantBatchNorm1d",
    "QuantBatchNorm2d",
    "QuantBmm",
    "QuantConv1d",
    "QuantConv2d",
    "QuantFunction",
    "QuantLinear",
    "QuantMatmul",
    "QuantMul",
    "QuantReLU",
    "QuantReLUFunction",
    "QuantSpec",
    "clone_module",
    "quantizable_kinds",
    "submodule",
]

Builder = Callable[[fx.Node, nn.Module | None, LayerQuant, bool], nn.Module]


@dataclass(frozen=True)
class QuantSpec:
    """How one op kind is quantized.

    Attributes:
        kind: the op kind (``linear`` ...), as :func:`quantsearch.graph.op_kind_of` names it.
        roles: the roles a config may set for it.
        build: ``build(node, module, layer_quant, training) -> nn.Module``; ``module`` is the
            called module for ``call_module`` nodes, else ``None``.
        module_types: float module classes it accepts for ``call_module`` nodes.
        functions: whether ``call_function``/``call_method`` nodes of this kind are accepted
            (a function-form linear or conv: :mod:`.functional`).
        unsigned_roles: roles whose values are never negative, so a fixed-point format without
            an explicit ``signed`` is unsigned there (a ReLU's input loses its sign anyway).
    """

    kind: str
    roles: tuple[str, ...]
    build: Builder
    module_types: tuple[type[nn.Module], ...] = ()
    functions: bool = False
    unsigned_roles: tuple[str, ...] = ()

    def accepts(self, node: fx.Node, module: nn.Module | None) -> bool:
        if node.op == "call_module":
            return isinstance(module, (*self.module_types, QuantFunction, QuantParamFunction))
        return self.functions and node.op in ("call_function", "call_method")


QUANTIZERS: Registry[QuantSpec] = Registry("quantizable op kind")


def quantizable_kinds() -> list[str]:
    """The op kinds the quantize pass handles, sorted.

    Example:
        >>> quantizable_kinds()
        ['add', 'batch_norm1d', 'batch_norm2d', 'bmm', 'conv1d', 'conv2d', 'linear', 'matmul', 'mul', 'relu']
    """
    return QUANTIZERS.names()


# ---------------------------------------------------------------------------------------------
# Copying modules without sharing state


def submodule(root: nn.Module, target: str) -> nn.Module:
    """``root.get_submodule(target)`` without its checks: this runs for every node of every trial."""
    m = root
    for part in target.split("."):
        m = m._modules[part]  # type: ignore[assignment]
    return m


def _new_param(p: nn.Parameter, value: Tensor) -> nn.Parameter:
    return nn.Parameter(value, requires_grad=p.requires_grad)


def clone_module(
    module: nn.Module,
    cls: type[nn.Module] | None = None,
    *,
    replace: dict[str, Tensor] | None = None,
) -> nn.Module:
    """A copy of ``module`` that shares no tensor and no mutable container with it.

    Unlike ``copy.deepcopy`` it runs no ``__init__`` (so no weight initialisation) and copies
    each tensor once. ``cls`` re-classes the copy (``nn.Linear`` -> ``QuantLinear``);
    ``replace`` gives new values for some parameters (the quantized weights).

    Example:
        >>> lin = torch.nn.Linear(2, 2)
        >>> c = clone_module(lin)
        >>> torch.equal(c.weight, lin.weight), c.weight is lin.weight
        (True, False)
    """
    new = object.__new__(cls or type(module))
    # hook tables and other containers: new objects holding the same items
    state = {
        k: v.copy() if isinstance(v, (dict, list, set)) else v for k, v in module.__dict__.items()
    }
    replace = replace or {}
    state["_parameters"] = {
        k: None if p is None else _new_param(p, replace[k] if k in replace else p.detach().clone())
        for k, p in module._parameters.items()
    }
    state["_buffers"] = {
        k: None if b is None else b.detach().clone() for k, b in module._buffers.items()
    }
    state["_modules"] = {
        k: None if m is None else clone_module(m) for k, m in module._modules.items()
    }
    origins = module.__dict__.get(PARAM_ORIGINS, {})  # a copy of a copy: the first original
    state[PARAM_ORIGINS] = {
        k: origins.get(k, id(p)) for k, p in module._parameters.items() if p is not None
    }
    new.__dict__.update(state)
    return new


def _q(fmt: NumberFormat | None, x: Tensor) -> Tensor:
    return x if fmt is None else fmt.quantize(x)


# ---------------------------------------------------------------------------------------------
# Layers with parameters


class _QuantLayer(nn.Module):
    """Mixin placed before the float class: holds the formats and quantizes through them."""

    op_kind: ClassVar[str] = ""
    q_data_in: NumberFormat | None
    q_weight: NumberFormat | None
    q_bias: NumberFormat | None
    q_data_out: NumberFormat | None
    weights_on_grid: bool  # True while weight/bias hold values already on their grids

    def _set_formats(self, lq: LayerQuant, on_grid: bool) -> None:
        for role in ROLES:
            self.__dict__["q_" + role] = lq.format(role)
        self.__dict__["weights_on_grid"] = on_grid

    def used_param(self, name: str) -> Tensor | None:
        """``name`` (weight, bias) as the forward pass uses it: rounded where not on its grid."""
        p: Tensor | None = getattr(self, name)
        fmt: NumberFormat | None = getattr(self, "q_" + name)
        if p is None or fmt is None:
            return p
        if self.training:
            self.__dict__["weights_on_grid"] = False  # an optimizer may move them off the grid
            return fmt.quantize(p)
        return p if self.weights_on_grid else fmt.quantize(p)

    def extra_repr(self) -> str:
        base = super().extra_repr()
        return f"{base}, {formats_repr(self)}" if base else formats_repr(self)


class QuantLinear(_QuantLayer, nn.Linear):
    op_kind = "linear"

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(_q(self.q_data_in, x), self.used_param("weight"), self.used_param("bias"))  # type: ignore[arg-type]
        return _q(self.q_data_out, y)


class QuantConv1d(_QuantLayer, nn.Conv1d):
    op_kind = "conv1d"

    def forward(self, x: Tensor) -> Tensor:
        w = self.used_param("weight")
        y = self._conv_forward(_q(self.q_data_in, x), w, self.used_param("bias"))  # type: ignore[arg-type]
        return _q(self.q_data_out, y)


class QuantConv2d(_QuantLayer, nn.Conv2d):
    op_kind = "conv2d"

    def forward(self, x: Tensor) -> Tensor:
        w = self.used_param("weight")
        y = self._conv_forward(_q(self.q_data_in, x), w, self.used_param("bias"))  # type: ignore[arg-type]
        return _q(self.q_data_out, y)


class _QuantBatchNorm(_QuantLayer):
    """BatchNorm as hardware computes it: ``y = q_in(x) * q_weight(scale) + q_bias(shift)``.

    With a ``weight`` or ``bias`` format the layer is folded, as hls4ml and FINN fold it:
    ``scale = gamma / sqrt(var + eps)`` and ``shift = beta - mean * scale`` are the tensors the
    ``weight`` and ``bias`` formats quantize (not gamma and beta), so the quantized layer is
    one multiply-add per element with constants on their grids, which fixed-point hardware
    computes exactly. In eval mode ``var`` and ``mean`` are the running statistics and the fold
    is computed in float32 whatever the input's dtype (a float64 run then uses the same
    constants); in training mode they are the batch's, with gradients, and the running
    statistics are updated (on this copy only) as ``torch.nn.functional.batch_norm`` does.
    Without either format the layer is ``F.batch_norm`` on the quantized input.
    """

    running_mean: Tensor | None
    running_var: Tensor | None
    num_batches_tracked: Tensor | None
    momentum: float | None
    eps: float
    track_running_stats: bool
    num_features: int

    def _factor(self) -> float:
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                factor = 1.0 / float(self.num_batches_tracked)
        return factor

    def folded(self) -> tuple[Tensor, Tensor]:
        """The eval-mode ``(scale, shift)`` per channel, quantized: what hardware stores."""
        assert self.running_mean is not None and self.running_var is not None
        return self._fold(self.running_mean.float(), self.running_var.float(), torch.float32)

    def _fold(self, mean: Tensor, var: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        ones = torch.ones(self.num_features, dtype=dtype, device=mean.device)
        w, b = self._parameters["weight"], self._parameters["bias"]  # gamma, beta (affine)
        gamma = ones if w is None else w.to(dtype)
        beta = ones * 0 if b is None else b.to(dtype)
        scale = gamma / torch.sqrt(var + self.eps)
        return _q(self.q_weight, scale), _q(self.q_bias, beta - mean * scale)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)  # type: ignore[operator]
        factor = self._factor()
        use_batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        keep = not self.training or self.track_running_stats
        mean, var = (self.running_mean, self.running_var) if keep else (None, None)
        x = _q(self.q_data_in, x)
        if self.q_weight is None and self.q_bias is None:
            w, b = self._parameters["weight"], self._parameters["bias"]
            y = F.batch_norm(x, mean, var, w, b, use_batch_stats, factor, self.eps)
            return _q(self.q_data_out, y)
        if use_batch_stats:
            dims = [d for d in range(x.dim()) if d != 1]
            if mean is not None and var is not None:  # update the running statistics only
                F.batch_norm(x.detach(), mean, var, None, None, True, factor, self.eps)
            scale, shift = self._fold(x.mean(dims), x.var(dims, unbiased=False), x.dtype)
        else:
            scale, shift = self.folded()
        shape = [1, -1] + [1] * (x.dim() - 2)
        y = x * scale.to(x.dtype).view(shape) + shift.to(x.dtype).view(shape)
        return _q(self.q_data_out, y)


class QuantBatchNorm1d(_QuantBatchNorm, nn.BatchNorm1d):
    op_kind = "batch_norm1d"


class QuantBatchNorm2d(_QuantBatchNorm, nn.BatchNorm2d):
    op_kind = "batch_norm2d"


class QuantReLU(_QuantLayer, nn.ReLU):
    op_kind = "relu"

    def forward(self, x: Tensor) -> Tensor:
        return _q(self.q_data_out, F.relu(_q(self.q_data_in, x), inplace=self.inplace))


# ---------------------------------------------------------------------------------------------
# Functions (add, mul, relu) become modules that quantize every tensor argument; matmul and
# bmm too, but for parameter operands under a weight format (functional.py)


class QuantFunction(nn.Module):
    """Calls ``fn`` with every tensor argument in ``q_data_in`` and the result in ``q_data_out``."""

    op_kind: ClassVar[str] = ""

    def __init__(self, fn: Callable[..., Any], lq: LayerQuant) -> None:
        super().__init__()
        self.fn = fn
        self.q_data_in: NumberFormat | None = lq.format("data_in")
        self.q_data_out: NumberFormat | None = lq.format("data_out")

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        fmt = self.q_data_in
        if fmt is not None:
            args = tuple(fmt.quantize(a) if isinstance(a, Tensor) else a for a in args)
            kwargs = {k: fmt.quantize(v) if isinstance(v, Tensor) else v for k, v in kwargs.items()}
        return _q(self.q_data_out, self.fn(*args, **kwargs))

    def extra_repr(self) -> str:
        name = getattr(self.fn, "__name__", repr(self.fn))
        return ", ".join(x for x in (name, formats_repr(self)) if x)


class QuantAdd(QuantFunction):
    op_kind = "add"


class QuantMul(QuantFunction):
    op_kind = "mul"


class QuantReLUFunction(QuantFunction):
    op_kind = "relu"


# ---------------------------------------------------------------------------------------------
# Builders


def _layer_builder(cls: type[_QuantLayer]) -> Builder:
    folds = issubclass(cls, _QuantBatchNorm)  # its formats quantize the fold, not gamma and beta

    def build(node: fx.Node, module: nn.Module | None, lq: LayerQuant, training: bool) -> nn.Module:
        if module is None:
            raise ConfigError(f"node {node.name!r}: {cls.op_kind} needs a module to quantize")
        module = plain_layer(module, pruned=not training)  # the weight its forward computes
        # In eval mode the weights are rounded here, once, instead of in every forward pass.
        replace: dict[str, Tensor] = {}
        if not training and not folds:
            for role in PARAM_ROLES:
                fmt, p = lq.format(role), getattr(module, role, None)
                if fmt is not None and isinstance(p, Tensor):
                    replace[role] = fmt.quantize(p.detach())
        new = clone_module(module, cls, replace=replace)
        assert isinstance(new, _QuantLayer)
        new._set_formats(lq, on_grid=not training and not folds)
        return new

    return build


def _function_of(node: fx.Node, module: nn.Module | None) -> Callable[..., Any]:
    if isinstance(module, QuantFunction):  # quantizing an already quantized graph again
        return module.fn
    if node.op == "call_method":
        fn: Callable[..., Any] = getattr(torch.Tensor, str(node.target))
        return fn
    assert callable(node.target)
    return node.target


def _function_builder(cls: type[QuantFunction]) -> Builder:
    def build(node: fx.Node, module: nn.Module | None, lq: LayerQuant, training: bool) -> nn.Module:
        return cls(_function_of(node, module), lq)

    return build


_build_relu_module = _layer_builder(QuantReLU)


def _relu_builder(
    node: fx.Node, module: nn.Module | None, lq: LayerQuant, training: bool
) -> nn.Module:
    if node.op == "call_module" and isinstance(module, nn.ReLU):
        return _build_relu_module(node, module, lq, training)
    return QuantReLUFunction(_function_of(node, module), lq)


def _param_layer_builder(cls: type[_QuantLayer]) -> Builder:
    """The module form's builder, or a function-form layer's (``F.linear(x, self.w)``)."""
    build_module, fcls = _layer_builder(cls), FUNCTION_LAYERS[cls.op_kind]

    def build(node: fx.Node, module: nn.Module | None, lq: LayerQuant, training: bool) -> nn.Module:
        if node.op == "call_module" and not isinstance(module, QuantParamFunction):
            return build_module(node, module, lq, training)
        fn = module.fn if isinstance(module, QuantParamFunction) else node.target
        assert callable(fn)
        return fcls(fn, lq)

    return build


for _cls, _float in ((QuantLinear, nn.Linear), (QuantConv1d, nn.Conv1d), (QuantConv2d, nn.Conv2d)):
    QUANTIZERS.add(
        _cls.op_kind,
        QuantSpec(_cls.op_kind, ROLES, _param_layer_builder(_cls), (_float,), functions=True),
    )
for _bn, _float_bn in ((QuantBatchNorm1d, nn.BatchNorm1d), (QuantBatchNorm2d, nn.BatchNorm2d)):
    QUANTIZERS.add(_bn.op_kind, QuantSpec(_bn.op_kind, ROLES, _layer_builder(_bn), (_float_bn,)))
QUANTIZERS.add(
    "relu",
    QuantSpec(
        "relu",
        ACTIVATION_ROLES,
        _relu_builder,
        (nn.ReLU,),
        functions=True,
        unsigned_roles=ACTIVATION_ROLES,
    ),
)
for _fcls in (QuantAdd, QuantMul):
    QUANTIZERS.add(
        _fcls.op_kind,
        QuantSpec(_fcls.op_kind, ACTIVATION_ROLES, _function_builder(_fcls), functions=True),
    )
_OPERAND_ROLES = ("data_in", "weight", "data_out")  # weight: operands that are parameters
for _ocls in (QuantMatmul, QuantBmm):
    _build = build_operands_function(_ocls)
    QUANTIZERS.add(_ocls.op_kind, QuantSpec(_ocls.op_kind, _OPERAND_ROLES, _build, functions=True))
