"""The rules of cost_rules_reduce: vector norms in each of torch's spellings (Tensor.norm,
torch.norm and torch.linalg.norm were listed uncounted, and every order but 2) and
F.normalize (p = 1 was listed uncounted).

Referee: ``torch.utils.flop_counter.FlopCounterMode`` counts none of them (0, checked), so the
counts are by hand, from the formulas next to each rule; a matrix norm stays uncounted.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from quantsearch.graph import info, trace
from quantsearch.passes.analysis import compute_cost


class Fn(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _cost(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[int, int, int]:
    """MACs, forward and backward FLOPs of the graph's one op node; none uncounted."""
    model = Fn(fn).eval()
    with FlopCounterMode(display=False) as fcm:
        model(x)
    assert fcm.get_total_flops() == 0
    gm = trace(model, x)
    assert compute_cost(gm).uncounted == ()
    (c,) = [info(n).cost for n in gm.graph.nodes if n.op.startswith("call")]
    return c["macs"], c["flops"], c["flops_backward"]


def _kind_cost(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, kind: str
) -> tuple[int, int, int]:
    """MACs, forward and backward FLOPs of the node of op kind ``kind``; none uncounted."""
    gm = trace(Fn(fn).eval(), x)
    assert compute_cost(gm).uncounted == ()
    (c,) = [info(n).cost for n in gm.graph.nodes if info(n).op_kind == kind]
    return c["macs"], c["flops"], c["flops_backward"]


# x (4, 6): I = 24; over dim 1, N = 4.
_I, _N = 24, 4


@pytest.mark.parametrize(
    ("fn", "fwd", "bwd"),
    [
        # 2-norm: 2 I both ways, however it is spelled
        (lambda x: x.norm(dim=1), 2 * _I, 2 * _I),
        (lambda x: torch.norm(x, 2, 1), 2 * _I, 2 * _I),
        (lambda x: torch.norm(x, p="fro", dim=(0, 1)), 2 * _I, 2 * _I),  # one output
        (lambda x: torch.linalg.norm(x, dim=1), 2 * _I, 2 * _I),
        (lambda x: torch.linalg.norm(x), 2 * _I, 2 * _I),  # Frobenius: the elements' 2-norm
        (lambda x: torch.linalg.vector_norm(x, 2, 1), 2 * _I, 2 * _I),
        # 1-norm: abs I, I - N adds; dx = dy sign(x) 2 I
        (lambda x: x.norm(p=1, dim=1), 2 * _I - _N, 2 * _I),
        (lambda x: torch.linalg.vector_norm(x, ord=1, dim=1), 2 * _I - _N, 2 * _I),
        (lambda x: torch.linalg.norm(x, 1, dim=1), 2 * _I - _N, 2 * _I),
        # inf: abs I, I - N comparisons; dy to the argmax times its sign 2 N
        (lambda x: torch.linalg.vector_norm(x, math.inf, 1), 2 * _I - _N, 2 * _N),
        (lambda x: x.norm(p=-math.inf, dim=1), 2 * _I - _N, 2 * _N),
        # 0: a count of the nonzeros, no gradient
        (lambda x: torch.linalg.vector_norm(x, 0, 1), 2 * _I - _N, 0),
        # p = 3: abs, pow I each, I - N adds, a root N = 3 I; bwd 5 I + 2 N
        (lambda x: x.norm(p=3, dim=1), 3 * _I, 5 * _I + 2 * _N),
    ],
)
def test_vector_norms_by_hand(
    fn: Callable[[torch.Tensor], torch.Tensor], fwd: int, bwd: int
) -> None:
    assert _cost(fn, torch.randn(4, 6)) == (0, fwd, bwd)


def test_normalize_p1_and_p2_by_hand() -> None:
    """x (4, 6) along dim 1: N = 24, R = 4 rows. p = 2: 3 N + R, 5 N - R; p = 1: the 1-norm
    2 N - R, max with eps R, divide N = 3 N; bwd with sign(x) for y: 6 N - R."""
    x = torch.randn(4, 6)
    assert _cost(lambda t: F.normalize(t, dim=1), x) == (0, 3 * 24 + 4, 5 * 24 - 4)
    assert _cost(lambda t: F.normalize(t, p=1.0, dim=1), x) == (0, 3 * 24, 6 * 24 - 4)


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: torch.linalg.norm(x, 2),  # the largest singular value
        lambda x: torch.linalg.norm(x, ord=1, dim=(0, 1)),  # the largest column sum
        lambda x: torch.norm(x, p="nuc"),
        lambda x: F.normalize(x, p=3.0),
    ],
)
def test_matrix_norms_and_other_normalize_orders_stay_uncounted(
    fn: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    gm = trace(Fn(fn).eval(), torch.randn(4, 6))
    (u,) = compute_cost(gm).uncounted
    assert "could not read the node: ValueError: counted for" in u.reason


@pytest.mark.parametrize(
    ("kind", "fn", "fwd", "bwd"),
    [
        # x (4, 6) reduced over dim 1: I = 24, N = 4
        ("nansum", lambda x: torch.nansum(x, 1), 2 * _I - _N, _I),
        ("nanmean", lambda x: x.nanmean(1), 3 * _I - _N, _I + _N),
        ("var_mean", lambda x: torch.var_mean(x, 1)[0], 4 * _I, 4 * _I + _N),
        ("std_mean", lambda x: torch.std_mean(x, 1)[1], 4 * _I + _N, 4 * _I + 3 * _N),
        ("aminmax", lambda x: torch.aminmax(x, dim=1)[0], 2 * (_I - _N), 2 * _N),
        ("all", lambda x: (x > 0).all(1).float(), _I - _N, 0),
        ("any", lambda x: torch.any(x > 0, 1).float(), _I - _N, 0),
        ("count_nonzero", lambda x: torch.count_nonzero(x, 1).float(), 2 * _I - _N, 0),
        # scans along dim 1, R = 4 rows: N - R steps
        ("cumprod", lambda x: torch.cumprod(x, 1), _I - _N, 3 * _I - _N),
        ("cummax", lambda x: torch.cummax(x, 1)[0], _I - _N, _I),
        ("cummin", lambda x: x.cummin(dim=1)[0], _I - _N, _I),
        # first differences along dim 1: N = 4 * 5 = 20 subtractions, 2 N back
        ("diff", lambda x: torch.diff(x, dim=1), 20, 40),
        ("trace", torch.trace, 3, 0),  # min(4, 6) - 1 adds
    ],
)
def test_reductions_and_scans_by_hand(
    kind: str, fn: Callable[[torch.Tensor], torch.Tensor], fwd: int, bwd: int
) -> None:
    """Each was listed uncounted (FlopCounterMode counts them as 0)."""
    x = torch.randn(4, 6)
    model = Fn(fn).eval()
    gm = trace(model, x)
    assert compute_cost(gm).uncounted == ()
    (c,) = [info(n).cost for n in gm.graph.nodes if info(n).op_kind == kind]
    assert (c["macs"], c["flops"], c["flops_backward"]) == (0, fwd, bwd)


def test_diff_of_higher_order_stays_uncounted() -> None:
    gm = trace(Fn(lambda x: torch.diff(x, n=2)).eval(), torch.randn(4, 6))
    (u,) = compute_cost(gm).uncounted
    assert "counted for n = 1" in u.reason


@pytest.mark.parametrize(
    ("size", "kernel", "kw"),
    [
        ((4, 4), 2, {}),
        ((5, 6), (2, 3), {"stride": 2}),
        ((5, 5), 3, {"padding": 1, "dilation": 2}),  # padding drops block values
        ((7, 7), 2, {"stride": 3}),  # stride > kernel: positions no block covers
    ],
)
def test_fold_adds_the_overlapping_block_values(
    size: tuple[int, int], kernel: int | tuple[int, int], kw: dict[str, int]
) -> None:
    """F.fold and nn.Fold (listed uncounted): each output position adds the block values that
    land on it, the first a copy. Referee: fold of all-ones blocks, whose output counts the
    values landing on each position: adds = its sum - its nonzero positions. Backward: 0
    (unfold of dy, a copy)."""
    k = (kernel, kernel) if isinstance(kernel, int) else kernel
    blocks = F.unfold(torch.zeros(1, 1, *size), k, **kw).shape[-1]
    x = torch.ones(2, 3 * k[0] * k[1], blocks)
    hits = F.fold(x, size, k, **kw)
    want = int(hits.sum()) - int((hits > 0).sum())
    for fn in (lambda t: F.fold(t, size, k, **kw), nn.Fold(size, k, **kw)):
        assert _cost(fn, x) == (0, want, 0)


def test_logcumsumexp_histc_and_index_put_by_hand() -> None:
    """Each was listed uncounted. x (4, 6): logcumsumexp along dim 1, N = 24, R = 4: 8 (N - R)
    = 160, 5 N - R = 116 back. histc of the 24 values: 6 I, + 2 (I - 1) for the data's range
    (min = max = 0), none back. index_put: a write, free; accumulating 2 x 6 values: 12 adds."""
    x = torch.randn(4, 6)
    assert _cost(lambda t: torch.logcumsumexp(t, 1), x) == (0, 160, 116)
    assert _cost(lambda t: torch.histc(t, 5), x) == (0, 6 * 24 + 2 * 23, 0)
    assert _cost(lambda t: torch.histc(t, 5, -1.0, 1.0), x) == (0, 6 * 24, 0)
    rows, values = torch.tensor([0, 0]), torch.ones(2, 6)
    assert _cost(lambda t: t.index_put((rows,), values), x) == (0, 0, 0)
    assert _cost(lambda t: t.index_put((rows,), values, accumulate=True), x) == (0, 12, 0)


@pytest.mark.parametrize(
    ("kind", "fn", "fwd", "bwd"),
    [
        # index (4, 3): S = 12 written elements; the output (4, 6), N = 24
        ("scatter", lambda t, i: t.scatter(1, i, t[:, :3]), 0, 0),  # a write
        ("scatter", lambda t, i: t.scatter(1, i, 0.5, reduce="add"), 12, 0),
        ("scatter_reduce", lambda t, i: t.scatter_reduce(1, i, t[:, :3], "sum"), 12, 0),
        ("scatter_reduce", lambda t, i: t.scatter_reduce(1, i, t[:, :3], "prod"), 12, 24),
        ("scatter_reduce", lambda t, i: t.scatter_reduce(1, i, t[:, :3], "amax"), 12, 12),
        ("scatter_reduce", lambda t, i: t.scatter_reduce(1, i, t[:, :3], "mean"), 12 + 48, 24),
        ("scatter_", lambda t, i: t.clone().scatter_(1, i, 0.5), 0, 0),
    ],
)
def test_scatter_by_hand(kind: str, fn: Callable[..., torch.Tensor], fwd: int, bwd: int) -> None:
    """scatter and scatter_reduce were listed uncounted: a write is free, a reduction one op
    per written element (prod: dy y / x back, amax: dy to the winners; mean: and a count and
    divide per output)."""
    index = torch.tensor([[0, 1, 1], [2, 2, 2], [0, 3, 5], [4, 4, 0]])
    assert _kind_cost(lambda t: fn(t, index), torch.randn(4, 6), kind) == (0, fwd, bwd)


def test_dist_by_hand() -> None:
    """torch.dist (listed uncounted): x (4, 6) - y broadcast (6,): I = 24 subtracts, then the
    p-norm's rule over 24 elements to one: p = 2 2 I, p = 1 2 I - 1; bwd the norm's and I for
    y's negation."""
    x = torch.randn(4, 6)
    assert _kind_cost(lambda t: torch.dist(t, t[0]), x, "dist") == (0, 24 + 48, 48 + 24)
    assert _kind_cost(lambda t: torch.dist(t, t[0], p=1), x, "dist") == (0, 24 + 47, 48 + 24)


def test_renorm_by_hand() -> None:
    """x.renorm(2, 0, 1.0) of (4, 6) (listed uncounted): S = 4 slices of 6. Their 2-norms
    2 I = 48, a comparison and a factor per slice 3 S = 12, the rescale I = 24: 84; bwd
    6 I + 3 S = 156. p = 1: the 1-norm's 2 I - S = 44 instead."""
    x = torch.randn(4, 6)
    assert _cost(lambda t: t.renorm(2, 0, 1.0), x) == (0, 84, 156)
    assert _cost(lambda t: torch.renorm(t, 1, 0, 1.0), x) == (0, 80, 156)
