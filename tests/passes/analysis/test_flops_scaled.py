"""Ops whose count depends on their arguments: add/sub with ``alpha`` (a multiply per
element), ``where`` with a scalar branch (no gradient to route there), and addmm, baddbmm,
addbmm, addmv and addr with ``alpha`` or ``beta``. The elementwise counts are by hand
(FlopCounterMode counts no elementwise op: 0, checked); the products' MACs are the rules'
own, checked against FlopCounterMode in test_flops.py, test_flops_ops.py and
test_flops_linalg.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.graph import info, trace
from quantsearch.passes.analysis import compute_cost


class Fn(nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor], other: torch.Tensor) -> None:
        super().__init__()
        self.fn = fn
        self.register_buffer("other", other)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, self.other)


def _cost(fn: Callable[..., torch.Tensor], kind: str) -> tuple[int, int, int]:
    """x (3, 5) and other (5,): N = 15, other's gradient summed back adds 10."""
    model, x = Fn(fn, torch.randn(5)).eval(), torch.randn(3, 5)
    with FlopCounterMode(display=False) as fcm:
        model(x)
    assert fcm.get_total_flops() == 0
    gm = trace(model, x)
    assert compute_cost(gm).uncounted == ()
    (c,) = [info(n).cost for n in gm.graph.nodes if info(n).op_kind == kind]
    return c["macs"], c["flops"], c["flops_backward"]


@pytest.mark.parametrize(
    ("kind", "fn", "want"),
    [
        # x + y: N; dy summed back to y's 5 elements: 10
        ("add", lambda x, y: torch.add(x, y), (0, 15, 10)),
        # x + 2 y: the multiply N more; d(y) = 2 dy: N multiplies, + 10
        ("add", lambda x, y: torch.add(x, y, alpha=2), (0, 30, 25)),
        ("add", lambda x, y: x.add(y, alpha=0.5), (0, 30, 25)),
        # x - 2 y: N more forward; d(y) = -2 dy: one multiply (the negation folded in), + 10
        ("sub", lambda x, y: torch.sub(x, y, alpha=2), (0, 30, 25)),
        ("sub", lambda x, y: x - y, (0, 15, 25)),
    ],
)
def test_alpha_scales_the_second_operand(
    kind: str, fn: Callable[..., torch.Tensor], want: tuple[int, int, int]
) -> None:
    assert _cost(fn, kind) == want


@pytest.mark.parametrize(
    ("fn", "bwd"),
    [
        (lambda x, y: torch.where(x > 0, x, y), 15 + 15 + 10),  # both branches tensors
        (lambda x, y: torch.where(x > 0, x, 0.0), 15),  # dy masked once, for x
        (lambda x, y: torch.where(x > 0, 1.0, y), 15 + 10),  # for y, summed back
        (lambda x, y: x.where(x > 0, 0.0), 15),  # the method: x the first branch
        (lambda x, y: x.where(x > 0, y), 15 + 15 + 10),
    ],
)
def test_where_routes_dy_to_its_tensor_branches_only(
    fn: Callable[..., torch.Tensor], bwd: int
) -> None:
    """One select per element forward; backward dy masked for each tensor branch (and summed
    back to a broadcast one); a scalar branch gets no gradient (it was 2 N in every case)."""
    assert _cost(fn, "where") == (0, 15, bwd)


def _scaled_cases() -> list[tuple[str, Callable[..., torch.Tensor], tuple[int, ...], int, int]]:
    """(kind, fn(x, c, **scalings), x's shape, MACs, N); c is (4,), broadcast to N."""
    b = torch.randn(2, 5, 4)
    return [
        ("addmm", lambda x, c, **kw: torch.addmm(c, x, b[0], **kw), (3, 5), 60, 12),
        ("baddbmm", lambda x, c, **kw: torch.baddbmm(c, x, b, **kw), (2, 3, 5), 120, 24),
        ("addbmm", lambda x, c, **kw: torch.addbmm(c, x, b, **kw), (2, 3, 5), 120, 12),
        ("addmv", lambda x, c, **kw: torch.addmv(c, b[0].t(), x, **kw), (5,), 20, 4),
        ("addr", lambda x, c, **kw: torch.addr(c, x, c, **kw), (3,), 0, 12),
    ]


@pytest.mark.parametrize(("kind", "fn", "shape", "macs", "n"), _scaled_cases())
def test_alpha_and_beta_of_the_add_products_are_counted(
    kind: str, fn: Callable[..., torch.Tensor], shape: tuple[int, ...], macs: int, n: int
) -> None:
    """beta C + alpha P: the defaults cost the product and the add; alpha != 1 adds N
    multiplies forward and N back (dy scaled once for the product's gradients), beta != 1
    the same for C; beta = 0 drops C: no add, no gradient summed back to it. These were
    priced as the defaults whatever alpha and beta were."""
    x, c = torch.randn(shape), torch.randn(4)

    def cost(**kw: float) -> tuple[int, int, int]:
        model = Fn(lambda t, o: fn(t, o, **kw), c).eval()
        gm = trace(model, x)
        assert compute_cost(gm).uncounted == ()
        (got,) = [info(n).cost for n in gm.graph.nodes if info(n).op_kind == kind]
        return got["macs"], got["flops"], got["flops_backward"]

    m, fwd, bwd = cost()
    assert m == macs
    assert cost(alpha=2.0) == (macs, fwd + n, bwd + n)
    assert cost(beta=0.5) == (macs, fwd + n, bwd + n)
    assert cost(alpha=2.0, beta=0.5) == (macs, fwd + 2 * n, bwd + 2 * n)
    assert cost(beta=0.0) == (macs, fwd - n, bwd - (n - 4))


@pytest.mark.parametrize(
    ("kind", "fn", "fwd", "bwd"),
    [
        ("round", lambda x, y: torch.round(x), 15, 0),
        # x * 10^d, round, / 10^d: 3 per element (priced as a plain round, 1)
        ("round", lambda x, y: torch.round(x, decimals=2), 45, 0),
        ("round", lambda x, y: x.round(decimals=1), 45, 0),
        ("softplus", lambda x, y: torch.nn.functional.softplus(x), 4 * 15, 5 * 15),
        # log(1 + exp(beta x)) / beta: + beta x and the divide (2); back sigmoid(beta x): + 1
        ("softplus", lambda x, y: torch.nn.functional.softplus(x, beta=2.0), 6 * 15, 6 * 15),
    ],
)
def test_round_decimals_and_softplus_beta(
    kind: str, fn: Callable[..., torch.Tensor], fwd: int, bwd: int
) -> None:
    assert _cost(fn, kind) == (0, fwd, bwd)


def test_softplus_module_reads_its_beta() -> None:
    gm = trace(nn.Sequential(nn.Softplus(beta=0.5)).eval(), torch.randn(3, 5))
    cost = compute_cost(gm)
    assert (cost.uncounted, cost.flops, cost.flops_backward) == ((), 6 * 15, 6 * 15)


def _norm_cost(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    gm = trace(model.eval(), x)
    cost = compute_cost(gm)
    assert cost.uncounted == ()
    return cost.flops, cost.flops_backward


def test_a_norm_without_a_bias_leaves_out_the_bias_add() -> None:
    """x (3, 5): N = 15, R = 3 rows. LayerNorm 5 N + 4 R, + N for a weight (its gradient 3 N:
    dy gamma, dgamma's multiply and add) + N for a bias (its gradient N). A norm with a weight
    and no bias (nn.LayerNorm(bias=False), F.layer_norm / group_norm / batch_norm given a
    weight alone) was priced with the bias's add and gradient."""
    x, w = torch.randn(3, 5), torch.ones(5)
    base = (5 * 15 + 4 * 3, 9 * 15 + 2 * 3)
    assert _norm_cost(nn.LayerNorm(5), x) == (base[0] + 30, base[1] + 60)
    assert _norm_cost(nn.LayerNorm(5, bias=False), x) == (base[0] + 15, base[1] + 45)
    assert _norm_cost(Fn(lambda t, g: F.layer_norm(t, (5,), g), w), x) == (
        base[0] + 15,
        base[1] + 45,
    )
    # GroupNorm of (1, 3, 5) in 1 group: R = 1; weight (3,) per channel
    g = torch.randn(1, 3, 5)
    gn = (5 * 15 + 4, 9 * 15 + 2)
    assert _norm_cost(Fn(lambda t, c: F.group_norm(t, 1, c[:3]), w), g) == (
        gn[0] + 15,
        gn[1] + 45,
    )
    # eval BatchNorm: 2 N, N back; a weight + N and + 4 N back (dgamma recomputes xhat), a
    # bias + N and + N back
    stats = (torch.zeros(3), torch.ones(3))
    bn = Fn(lambda t, c: F.batch_norm(t, *stats, c[:3]), w)
    assert _norm_cost(bn, g) == (3 * 15, 5 * 15)
    assert _norm_cost(nn.Sequential(nn.BatchNorm1d(3)), g) == (4 * 15, 6 * 15)


def test_a_transformer_layer_without_biases_leaves_out_its_norms_biases() -> None:
    """nn.TransformerEncoderLayer(bias=False) on (1, 3, 5): the attention's biases (4 R E =
    60), the feed-forward's (R F + N = 39) and the two LayerNorms' (2 N = 30) are left out,
    forward and backward, of the biased layer's count (the norms' were not)."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 5)
    layers = [nn.TransformerEncoderLayer(5, 1, 8, 0.0, bias=b, batch_first=True) for b in (1, 0)]
    with_bias, without = (_norm_cost(nn.Sequential(m), x) for m in layers)
    assert without == (with_bias[0] - 129, with_bias[1] - 129)
