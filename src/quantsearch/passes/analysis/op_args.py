"""What a cost rule (:mod:`quantsearch.passes.analysis.cost_rules`) sees of one node, and what
it returns: the node's record, module and call arguments in; its MACs, FLOPs and BitOPs out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import fx, nn

from quantsearch.graph import NodeInfo, TensorMeta, info
from quantsearch.passes.analysis.tensors import arg_bits, role_bits

__all__ = ["OpArgs", "OpCost"]


@dataclass(frozen=True)
class OpCost:
    """What one node costs for the traced batch."""

    macs: int = 0
    flops: int = 0
    flops_backward: int = 0
    bitops: float = 0


class OpArgs:
    """What a cost rule sees of one node: its record, its module and its call arguments."""

    __slots__ = ("info", "module", "node")

    def __init__(self, node: fx.Node, ni: NodeInfo, module: nn.Module | None) -> None:
        self.node = node
        self.info = ni
        # Typed Any: rules read layer attributes (kernel_size, groups ...) that nn.Module's
        # type stubs cannot know; a missing one lands the node in ``uncounted``.
        self.module: Any = module

    @property
    def out(self) -> TensorMeta:
        """The first output tensor."""
        return self.info.outputs[0]

    @property
    def n_out(self) -> int:
        """Elements of the first output (N in the formulas)."""
        return self.info.outputs[0].numel

    def arg(self, index: int, name: str, default: Any = None) -> Any:
        """A call argument given positionally at ``index`` or by keyword ``name``."""
        if len(self.node.args) > index:
            return self.node.args[index]
        return self.node.kwargs.get(name, default)

    def tensor_arg(self, index: int, name: str) -> TensorMeta | None:
        """The traced metadata of a tensor argument, ``None`` for a scalar or a missing one."""
        value = self.arg(index, name)
        if isinstance(value, fx.Node):
            outs = info(value).outputs
            return outs[0] if outs else None
        return None

    def operands(self) -> list[TensorMeta | None]:
        """Metadata of every positional argument: a ``TensorMeta`` per tensor, else ``None``."""
        return [self.tensor_arg(i, "") for i in range(len(self.node.args))]

    def operand_bits(self, *indices: int) -> list[float]:
        """Bits per element of the positional arguments at ``indices``, as this node reads them."""
        out = []
        for i in indices:
            arg = self.node.args[i]
            if not isinstance(arg, fx.Node):
                raise ValueError(f"argument {i} is not a traced tensor")
            out.append(arg_bits(self.node, arg))
        return out

    def scalings(self, n: int, c_sum: int) -> tuple[int, int]:
        """Forward and backward FLOPs that ``beta * C + alpha * P`` (addmm and its kin) costs
        beyond beta = alpha = 1, for N = ``n`` outputs and ``c_sum`` adds summing dy back to
        C: alpha != 1 scales P (N) and dy once for P's gradients (N); beta != 1 scales C (N)
        and its gradient (N); beta = 0 drops C, its add (N) and its gradient (``c_sum``)."""
        alpha, beta = self.node.kwargs.get("alpha", 1), self.node.kwargs.get("beta", 1)
        fwd = bwd = n * bool(alpha != 1)
        if beta == 0:
            return fwd - n, bwd - c_sum
        return fwd + n * bool(beta != 1), bwd + n * bool(beta != 1)

    def first_input(self) -> TensorMeta:
        """The activation input: the first tensor operand (or ``input=``, given by keyword)."""
        for t in (*self.operands(), self.tensor_arg(0, "input")):
            if t is not None:
                return t
        raise ValueError("no tensor input")

    def bitops(self, macs: int, weight_dtype: str) -> float:
        """MACs x weight bits x input-activation bits at this node's precision."""
        w = role_bits(self.info, "weight", weight_dtype)
        x = role_bits(self.info, "data_in", self.first_input().dtype)
        return macs * w * x
