"""Products of vectors and matrices beyond matmul/bmm: einsum's broadcast batch letters,
dot, vdot, mv, addmv, addr, inner, tensordot, addbmm, linalg.matmul and linalg.multi_dot.

Referee: ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per MAC, 4 backward) where it
counts the op (einsum, inner, tensordot, addbmm, linalg.matmul, multi_dot); it counts dot, vdot,
mv, addmv and addr as 0 (checked), so those are counted by hand, in each test's docstring.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.graph import info, trace
from quantsearch.passes.analysis import compute_cost


class Fn(nn.Module):
    """``fn(x, *others)``, the other operands buffers (traced as get_attr, 32 bits each)."""

    def __init__(self, fn: Callable[..., torch.Tensor], *others: torch.Tensor) -> None:
        super().__init__()
        self.fn, self.n = fn, len(others)
        for i, t in enumerate(others):
            self.register_buffer(f"o{i}", t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, *(getattr(self, f"o{i}") for i in range(self.n)))


def _one(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """The cost entries of the graph's one op node; nothing listed uncounted."""
    gm = trace(model.eval(), x)
    assert compute_cost(gm).uncounted == ()
    (c,) = [info(n).cost for n in gm.graph.nodes if n.op.startswith("call")]
    return c


def _fcm(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """FlopCounterMode's forward and backward FLOPs, every operand requiring grad."""
    x = x.clone().requires_grad_(True)
    for b in model.buffers():
        b.requires_grad_(True)
    with FlopCounterMode(display=False) as fwd:
        y = model(x)
    with FlopCounterMode(display=False) as bwd:
        y.sum().backward()
    for b in model.buffers():
        b.requires_grad_(False)
    return fwd.get_total_flops(), bwd.get_total_flops()


@pytest.mark.parametrize(
    ("equation", "shapes"),
    [
        ("bij,bjk->bik", ((2, 3, 5), (1, 5, 4))),  # the second operand's batch letter broadcast
        ("bij,bjk->bik", ((1, 3, 5), (2, 5, 4))),  # the first's
        ("bhid,bhjd->bhij", ((2, 1, 3, 4), (1, 2, 5, 4))),  # both
    ],
)
def test_einsum_prices_a_broadcast_letter_at_its_broadcast_size(
    equation: str, shapes: tuple[tuple[int, ...], tuple[int, ...]]
) -> None:
    """A letter of size 1 in one operand is broadcast to the other's size: the batched matmul
    runs at that size. The rule took the last operand's size, half the MACs in the first case."""
    model, x = (
        Fn(lambda a, b: torch.einsum(equation, a, b), torch.randn(shapes[1])),
        torch.randn(shapes[0]),
    )
    c = _one(model, x)
    fwd, bwd = _fcm(model, x)
    assert (2 * c["macs"], 4 * c["macs"]) == (fwd, bwd)
    assert (c["flops"], c["flops_backward"], c["bitops"]) == (fwd, bwd, c["macs"] * 32 * 32)
