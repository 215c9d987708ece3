"""The rules of cost_rules_math (lerp, logit, trigonometric and hyperbolic functions, other
logarithm bases, tests, logical ops, atan2, hypot, fmod, remainder, logaddexp, xlogy,
copysign, rsub, and in-place forms): each was listed uncounted, its FLOPs missing from the
totals.

Referee: ``torch.utils.flop_counter.FlopCounterMode`` counts none of them (0, checked), so the
counts are by hand: the per-element figures written next to each rule, times the elements.
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
    def __init__(self, fn: Callable[..., torch.Tensor], *others: torch.Tensor) -> None:
        super().__init__()
        self.fn, self.n = fn, len(others)
        for i, t in enumerate(others):
            self.register_buffer(f"o{i}", t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x, *(getattr(self, f"o{i}") for i in range(self.n)))


def _cost(model: nn.Module, x: torch.Tensor, kind: str) -> tuple[int, int, int]:
    """MACs, forward and backward FLOPs of the node of op kind ``kind``; none uncounted."""
    gm = trace(model.eval(), x)
    assert compute_cost(gm).uncounted == ()
    (c,) = [info(n).cost for n in gm.graph.nodes if info(n).op_kind == kind]
    return c["macs"], c["flops"], c["flops_backward"]


def _unary() -> list[tuple[str, Callable[..., torch.Tensor], int, int]]:
    """(op kind, fn, forward and backward FLOPs per element)."""
    return [
        ("tan", torch.tan, 1, 3),
        ("sinh", torch.sinh, 1, 2),
        ("cosh", lambda x: x.cosh(), 1, 2),
        ("asin", torch.asin, 1, 4),
        ("acos", torch.acos, 1, 5),
        ("asinh", torch.asinh, 1, 4),
        ("acosh", lambda x: torch.acosh(x + 1), 1, 4),
        ("atanh", torch.atanh, 1, 3),
        ("log2", torch.log2, 1, 2),
        ("log10", lambda x: x.log10(), 1, 2),
        ("exp2", torch.exp2, 1, 2),
        ("frac", torch.frac, 2, 0),
        ("deg2rad", torch.deg2rad, 1, 1),
        ("rad2deg", torch.rad2deg, 1, 1),
        ("sgn", torch.sgn, 1, 0),
        ("logit", torch.logit, 3, 3),
        ("logit", lambda x: x.logit(eps=1e-6), 5, 5),  # clamped to [eps, 1 - eps] first
        ("special_logit", torch.special.logit, 3, 3),
        ("special_expit", torch.special.expit, 4, 3),  # sigmoid's
        ("lgamma", torch.lgamma, 1, 2),
        ("digamma", torch.digamma, 1, 2),
        ("i0", torch.i0, 1, 2),
        ("erfinv", torch.erfinv, 1, 4),
        ("special_ndtri", torch.special.ndtri, 1, 5),
        ("special_ndtr", torch.special.ndtr, 4, 6),
        ("special_log_ndtr", torch.special.log_ndtr, 5, 11),
        ("special_entr", torch.special.entr, 5, 4),
        ("special_erfcx", torch.special.erfcx, 4, 4),
        ("sinc", torch.sinc, 4, 6),
        ("fix", torch.fix, 1, 0),  # trunc's
        ("exp_", lambda x: x.clone().exp_(), 1, 1),  # in place: exp's
        ("clamp_", lambda x: x.clone().clamp_(0.1, 0.6), 2, 2),
        ("elu_", lambda x: F.elu_(x.clone()), 4, 3),
    ]


@pytest.mark.parametrize(("kind", "fn", "fwd", "bwd"), _unary())
def test_unary_ops_by_hand(kind: str, fn: Callable[..., torch.Tensor], fwd: int, bwd: int) -> None:
    x = torch.rand(3, 5) * 0.8 + 0.1  # inside every op's domain
    model = Fn(fn)
    with FlopCounterMode(display=False) as fcm:
        model(x)
    assert fcm.get_total_flops() == 0
    assert _cost(model, x, kind) == (0, fwd * 15, bwd * 15)


@pytest.mark.parametrize(
    ("kind", "fn", "fwd"),
    [
        ("isnan", torch.isnan, 1),
        ("isinf", torch.isinf, 2),
        ("isfinite", torch.isfinite, 2),
        ("signbit", torch.signbit, 1),
        ("logical_not", torch.logical_not, 1),
        ("logical_and", lambda x: torch.logical_and(x > 0.5, x < 0.7), 1),
        ("heaviside", lambda x: torch.heaviside(x, torch.tensor(0.5)), 3),
        ("isclose", lambda x: torch.isclose(x, x.square()), 6),
        ("floor_divide", lambda x: torch.floor_divide(x, 0.3), 2),  # x // y's
    ],
)
def test_tests_and_logical_ops_have_no_gradient(
    kind: str, fn: Callable[..., torch.Tensor], fwd: int
) -> None:
    x = torch.rand(3, 5)
    assert _cost(Fn(lambda t: fn(t).float()), x, kind) == (0, fwd * 15, 0)


def _binary() -> list[tuple[str, Callable[..., torch.Tensor], int, int, int]]:
    """(op kind, fn(x (3, 5), y (5,)), fwd, d(x), d(y) per element)."""
    return [
        ("atan2", torch.atan2, 1, 5, 6),
        ("hypot", torch.hypot, 4, 2, 2),
        ("fmod", torch.fmod, 4, 0, 4),
        ("remainder", torch.remainder, 4, 0, 4),
        ("mod", lambda x, y: x % y, 4, 0, 4),
        ("logaddexp", torch.logaddexp, 8, 6, 1),
        ("logaddexp2", torch.logaddexp2, 9, 7, 1),
        ("xlogy", torch.xlogy, 4, 2, 2),
        ("special_xlogy", torch.special.xlogy, 4, 2, 2),
        ("copysign", torch.copysign, 3, 2, 0),
        ("rsub", torch.rsub, 1, 1, 0),  # y - x
        ("true_divide", torch.true_divide, 1, 1, 3),  # div's: dy / q, -dy y / q
    ]


@pytest.mark.parametrize(("kind", "fn", "fwd", "d_x", "d_y"), _binary())
def test_binary_ops_by_hand(
    kind: str, fn: Callable[..., torch.Tensor], fwd: int, d_x: int, d_y: int
) -> None:
    """x (3, 5) and y (5,): N = 15; y's gradient summed back to its 5 elements adds 10."""
    x, y = torch.rand(3, 5) + 0.5, torch.rand(5) + 0.5
    model = Fn(fn, y)
    with FlopCounterMode(display=False) as fcm:
        model(x)
    assert fcm.get_total_flops() == 0
    assert _cost(model, x, kind) == (0, fwd * 15, 15 * (d_x + d_y) + 10)


def test_a_scalar_operand_has_no_gradient() -> None:
    """2 - x as rsub(x, 2): dy negated for x, 15; x % 2: x's gradient is dy itself, 0."""
    x = torch.rand(3, 5)
    assert _cost(Fn(lambda t: torch.rsub(t, 2.0)), x, "rsub") == (0, 15, 15)
    assert _cost(Fn(lambda t: t % 2), x, "mod") == (0, 60, 0)
    assert _cost(Fn(lambda t: torch.float_power(t, 2)), x, "float_power") == (0, 15, 45)  # pow's


@pytest.mark.parametrize("weight", ["scalar", "tensor"])
def test_lerp_by_hand(weight: str) -> None:
    """start + w (end - start) = 3 N; bwd with a scalar w: dy (1 - w), dy w = 2 N; a tensor w
    (5,): 1 - w, two products, end - start and its product = 5 N, + 10 summing w's back."""
    end, w = torch.rand(3, 5), torch.rand(5)
    x = torch.rand(3, 5)
    if weight == "scalar":
        model = Fn(lambda s, e: torch.lerp(s, e, 0.3), end)
        assert _cost(model, x, "lerp") == (0, 45, 30)
    else:
        model = Fn(lambda s, e, w: s.lerp(e, w), end, w)
        assert _cost(model, x, "lerp") == (0, 45, 75 + 10)


def test_cross_gumbel_softmax_ldexp_and_in_place_nan_to_num_by_hand() -> None:
    """Each was listed uncounted. x (4, 3): cross products along the 3, N = 12: 3 N, 6 N back.
    gumbel_softmax of (3, 5): 11 N (+ 3 N - R for hard), 5 N back. ldexp by an integer
    exponent: 2 N, and dy 2^e for x alone (2 N). nan_to_num_: nan_to_num's 3 and 1."""
    x = torch.randn(4, 3)
    assert _cost(Fn(lambda t: torch.cross(t, t.flip(0), dim=1)), x, "cross") == (0, 36, 72)
    assert _cost(Fn(lambda t: torch.linalg.cross(t, t.flip(0))), x, "linalg_cross") == (0, 36, 72)
    y = torch.randn(3, 5)
    assert _cost(Fn(lambda t: F.gumbel_softmax(t, tau=0.5)), y, "gumbel_softmax") == (0, 165, 75)
    hard = Fn(lambda t: F.gumbel_softmax(t, hard=True))
    assert _cost(hard, y, "gumbel_softmax") == (0, 165 + 45 - 3, 75)
    e = torch.ones(5, dtype=torch.int32)
    assert _cost(Fn(lambda t, k: torch.ldexp(t, k), e), y, "ldexp") == (0, 30, 30)
    assert _cost(Fn(lambda t: t.clone().nan_to_num_()), y, "nan_to_num_") == (0, 45, 15)


@pytest.mark.parametrize(
    "fn",
    [
        lambda t: torch.fft.fft(t).real,
        lambda t: torch.fft.rfft(t).abs(),
        lambda t: torch.fft.irfft(t),
    ],
)
def test_ffts_stay_uncounted_with_the_reason(fn: Callable[..., torch.Tensor]) -> None:
    """An FFT's arithmetic is its algorithm's (radix, real input, prime factors, the library
    torch calls): no count holds for every size and build."""
    gm = trace(Fn(fn).eval(), torch.randn(3, 8))
    (u,) = compute_cost(gm).uncounted
    assert u.op_kind.startswith("fft_") and "depends on its algorithm" in u.reason


def test_more_in_place_forms_cost_their_ops_arithmetic() -> None:
    """masked_fill_, clip_, addmm_, baddbmm_, addmv_ and addr_ were listed uncounted; each
    costs what the op it names costs. bernoulli: one comparison per element, no gradient."""
    x = torch.randn(3, 5)
    pairs = [
        (lambda t: t.masked_fill(t > 0, 0.0), lambda t: t.clone().masked_fill_(t > 0, 0.0)),
        (lambda t: t.clip(-1, 1), lambda t: t.clone().clip_(-1, 1)),
        (lambda t: t.addmm(t, torch.ones(5, 5)), lambda t: t.clone().addmm_(t, torch.ones(5, 5))),
        (
            lambda t: t[None].baddbmm(t[None], torch.ones(1, 5, 5)),
            lambda t: t[None].clone().baddbmm_(t[None], torch.ones(1, 5, 5)),
        ),
        (lambda t: t[0].addmv(t.t(), t[:, 0]), lambda t: t[0].clone().addmv_(t.t(), t[:, 0])),
        (lambda t: t.addr(t[:, 0], t[0]), lambda t: t.clone().addr_(t[:, 0], t[0])),
    ]
    for op, in_place in pairs:
        totals = []
        for fn in (op, in_place):
            cost = compute_cost(trace(Fn(fn).eval(), x))
            assert cost.uncounted == ()
            totals.append((cost.macs, cost.flops, cost.flops_backward))
        assert totals[0] == totals[1] and totals[0][1] > 0
    assert _cost(Fn(lambda t: torch.bernoulli(t)), torch.rand(3, 5), "bernoulli") == (0, 15, 0)


def test_angle_of_a_real_tensor_by_hand() -> None:
    """torch.angle of a real tensor (listed uncounted): pi where negative, else 0, 1 select per
    element and no gradient."""
    assert _cost(Fn(torch.angle), torch.randn(3, 5), "angle") == (0, 15, 0)
