"""Facts about the tensors on a traced graph's edges: bits per element and the traced batch.

Bits: one element costs its number format's width if quantized, else its dtype's width.

The quantize pass records a format per role (``data_in``, ``weight``, ``bias``, ``data_out``) in
``NodeInfo.precision``; every format has a ``bits_per_element`` property. A role without a format
is stored in the tensor's own dtype, so its width comes from the dtype (``float32`` = 32,
``float16`` = 16, ``int64`` = 64), never from a hard-coded 32 and never from ``element_size()``
(fake-quantized tensors are still float32 in memory).

Which role a node reads an argument in follows the quantize pass: a function-form ``linear`` or
``conv`` reads its second and third arguments as ``weight`` and ``bias``; a ``matmul`` or ``bmm`` with a
``weight`` format reads its operands that are the model's parameters (:func:`param_source`) as
``weight``; every other tensor argument of every node is ``data_in`` (a quantized ``matmul``,
``add`` or ``mul`` rounds all of its other tensor arguments, a parameter fetched by ``get_attr``
included, to its ``data_in`` format).
:func:`arg_bits` prices an argument by that role, so a parameter operand and an activation
operand cost what the format applied to each of them costs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import fx

from quantsearch.errors import MetricError
from quantsearch.graph import META_KEY, NodeInfo

__all__ = [
    "PARAM_ARGS",
    "VIEW_ATTRS",
    "arg_bits",
    "arg_role",
    "arg_storage",
    "dtype_bits",
    "role_bits",
    "role_storage",
    "traced_batch_size",
]

# Function-form layers that take their parameters as arguments: (position, keyword, role).
PARAM_ARGS: dict[str, tuple[tuple[int, str, str], ...]] = {
    kind: ((1, "weight", "weight"), (2, "bias", "bias"))
    for kind in ("linear", "conv1d", "conv2d", "conv3d")
}


# Ops that take any tensor operand, whose operands that are the model's parameters a
# ``weight`` format may round (``x @ self.w.t()``); unset, ``data_in`` rounds them too.
WEIGHT_OPERAND_KINDS = frozenset({"matmul", "bmm"})
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
# Tensor attributes that are views of every element (``self.w.T`` traces to
# ``getattr(w, "T")``), unlike ``.shape`` and ``.dtype``, which read no values.
VIEW_ATTRS = ("T", "mT", "H", "mH")


@lru_cache(maxsize=64)
def dtype_bits(dtype: str | torch.dtype) -> int:
    """Bits per element of a dtype given as ``torch.float16`` or as its name ``"float16"``.

    Example:
        >>> dtype_bits("float32"), dtype_bits(torch.bfloat16), dtype_bits("bool")
        (32, 16, 8)
    """
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(resolved, torch.dtype):
            raise MetricError(f"dtype must be a torch dtype name (got {dtype!r})")
        dtype = resolved
    return int(dtype.itemsize) * 8


def role_bits(ni: NodeInfo, role: str, dtype: str | torch.dtype) -> float:
    """Bits per element of the tensor in ``role`` at node ``ni``.

    Args:
        ni: the node's record; ``ni.precision[role]`` is used when present.
        role: ``data_in``, ``weight``, ``bias`` or ``data_out``.
        dtype: the tensor's dtype, used when the role has no format.

    Raises:
        MetricError: when the recorded format has no numeric ``bits_per_element``.
    """
    fmt = ni.precision.get(role)
    if fmt is None:
        return dtype_bits(dtype)
    bits = getattr(fmt, "bits_per_element", None)
    if isinstance(bits, bool) or not isinstance(bits, (int, float)):
        raise MetricError(
            f"node {ni.name!r}: precision[{role!r}] must have a numeric bits_per_element "
            f"(got {type(fmt).__name__} with bits_per_element={bits!r})"
        )
    return bits


def param_source(arg: object) -> fx.Node | None:
    """The ``get_attr`` node whose tensor ``arg`` is, read directly or through views that keep
    every element (:data:`PARAM_VIEWS`, ``.T``); ``None`` for a tensor computed in forward."""
    n = arg
    while isinstance(n, fx.Node):
        ni = n.meta.get(META_KEY)
        if not isinstance(ni, NodeInfo):
            return None
        if n.op == "get_attr":
            return n if ni.outputs else None  # a tensor, not another attribute
        if n.op not in ("call_function", "call_method") or not n.args:
            return None
        attr = n.args[1] if ni.op_kind == "getattr" and len(n.args) > 1 else None
        if ni.op_kind not in PARAM_VIEWS and attr not in VIEW_ATTRS:
            return None
        n = n.args[0]
    return None


def arg_role(user: fx.Node, arg: fx.Node) -> str:
    """The role in which ``user`` reads its argument ``arg`` (see the module docstring).

    Example:
        >>> import torch
        >>> from quantsearch.graph import trace
        >>> class M(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.w = torch.nn.Parameter(torch.ones(3, 3))
        ...     def forward(self, x):
        ...         return torch.nn.functional.linear(x, self.w.t()) @ self.w
        >>> n = {n.name: n for n in trace(M(), torch.ones(4, 3)).graph.nodes}
        >>> arg_role(n["linear"], n["t"]), arg_role(n["matmul"], n["w"])
        ('weight', 'data_in')
    """
    ni = user.meta.get(META_KEY)
    # call_module: a function-form layer the quantize pass made a module keeps its arguments
    if user.op in ("call_function", "call_module") and isinstance(ni, NodeInfo):
        for index, keyword, role in PARAM_ARGS.get(ni.op_kind, ()):
            if (len(user.args) > index and user.args[index] is arg) or user.kwargs.get(
                keyword
            ) is arg:
                return role
        if ni.op_kind in WEIGHT_OPERAND_KINDS and "weight" in ni.precision:
            return "weight" if param_source(arg) is not None else "data_in"
    return "data_in"


def role_storage(ni: NodeInfo, role: str, dtype: str | torch.dtype, shape: Sequence[int]) -> float:
    """Bits a tensor of ``shape`` in ``role`` at node ``ni`` takes: its format's
    ``storage_bits`` (``numel x bits_per_element``, save that a block format counts the blocks
    the shape really has), else ``numel x`` its dtype's width.

    Raises:
        MetricError: as :func:`role_bits`.
    """
    bits = role_bits(ni, role, dtype)  # checks the format's width
    storage = getattr(ni.precision.get(role), "storage_bits", None)
    return math.prod(shape) * bits if storage is None else storage(shape)


def arg_storage(user: fx.Node, arg: fx.Node) -> float:
    """Bits ``arg``'s traced tensor takes as ``user`` reads it (:func:`arg_bits`' format,
    :func:`role_storage` of the tensor's shape).

    Raises:
        MetricError: when either node has no traced tensor metadata.
    """
    ui, ai = user.meta.get(META_KEY), arg.meta.get(META_KEY)
    if not isinstance(ui, NodeInfo) or not isinstance(ai, NodeInfo) or not ai.outputs:
        raise MetricError(f"node {user.name!r}: argument {arg.name!r} has no traced tensor")
    out = ai.outputs[0]
    return role_storage(ui, arg_role(user, arg), out.dtype, out.shape)


def arg_bits(user: fx.Node, arg: fx.Node) -> float:
    """Bits per element of ``arg`` as ``user`` reads it: the format ``user`` applies to it in
    that role, else the dtype ``arg`` was traced with.

    Raises:
        MetricError: when either node has no traced tensor metadata.
    """
    ui, ai = user.meta.get(META_KEY), arg.meta.get(META_KEY)
    if not isinstance(ui, NodeInfo) or not isinstance(ai, NodeInfo) or not ai.outputs:
        raise MetricError(f"node {user.name!r}: argument {arg.name!r} has no traced tensor")
    return role_bits(ui, arg_role(user, arg), ai.outputs[0].dtype)


def traced_batch_size(gm: fx.GraphModule) -> int:
    """The leading dimension of the first graph input as traced (1 for a 0-d or missing input).

    Per-node counts are for this batch; per-sample metrics divide by it.
    """
    for n in gm.graph.nodes:
        if n.op == "placeholder":
            ni = n.meta.get(META_KEY)
            if isinstance(ni, NodeInfo) and ni.outputs and ni.outputs[0].shape:
                return max(int(ni.outputs[0].shape[0]), 1)
            return 1
    return 1
