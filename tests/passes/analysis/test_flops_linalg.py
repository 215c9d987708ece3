"""Products of vectors and matrices beyond matmul/bmm: einsum's broadcast batch letters,
dot, vdot, mv, addmv, addr, inner, tensordot, addbmm, linalg.matmul and linalg.multi_dot.

Referee: ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per MAC, 4 backward) where it
counts the op (einsum, inner, tensordot, addbmm, linalg.matmul, multi_dot); it counts dot, vdot,
mv, addmv and addr as 0 (checked), so those are counted by hand, in each test's docstring.
"""

from __future__ import annotations

import math
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


@pytest.mark.parametrize(
    ("equation", "shapes", "adds"),
    [
        ("...ij,...jk->...ik", ((2, 3, 5), (2, 5, 4)), 0),
        ("...ij,jk", ((2, 2, 3, 5), (5, 4)), 0),  # implicit output: ...ik
        ("b...d,bd->b...", ((2, 3, 4, 5), (2, 5)), 0),
        ("...ij,...jk", ((1, 3, 5), (2, 5, 4)), 0),  # '...' broadcast
        ("ij,jk->k", ((3, 4), (4, 5)), 12 - 4),  # i summed out of the first operand first
        ("ijk,ik->j", ((2, 3, 4), (2, 4)), 0),
    ],
)
def test_einsum_with_ellipsis_or_a_letter_summed_in_one_operand(
    equation: str, shapes: tuple[tuple[int, ...], tuple[int, ...]], adds: int
) -> None:
    """Listed uncounted before. '...' is spelled out in letters; a letter in one operand only
    and not in the output is summed out of it (adds, as sum's) before the batched matmul,
    whose MACs FlopCounterMode counts."""
    model, x = (
        Fn(lambda a, b: torch.einsum(equation, a, b), torch.randn(shapes[1])),
        torch.randn(shapes[0]),
    )
    c = _one(model, x)
    fwd, bwd = _fcm(model, x)
    assert (c["flops"], c["flops_backward"]) == (fwd + adds, bwd)
    assert c["macs"] > 0 and 2 * c["macs"] == fwd


@pytest.mark.parametrize(
    ("equation", "shape", "fwd", "bwd"),
    [
        ("ij->j", (4, 3), 12 - 3, 0),  # a sum over i: I - N adds, dy broadcast back
        ("ii->i", (4, 4), 0, 0),  # the diagonal: a view
        ("ii", (4, 4), 3, 0),  # the trace: the diagonal's 4 summed
        ("bij->bji", (2, 3, 4), 0, 0),  # a transpose
        ("ii,i->i", (3, 3), 3, 6),  # diagonal times a vector: N multiplies, 2 N back
    ],
)
def test_einsum_of_one_operand_or_no_contraction_by_hand(
    equation: str, shape: tuple[int, ...], fwd: int, bwd: int
) -> None:
    """No matmul runs: FlopCounterMode counts 0 (checked); sums and multiplies by hand."""
    others = (torch.randn(shape[0]),) if "," in equation else ()
    model, x = Fn(lambda *t: torch.einsum(equation, *t), *others), torch.randn(shape)
    assert _fcm(model, x)[0] == 0
    c = _one(model, x)
    assert (c["macs"], c["flops"], c["flops_backward"]) == (0, fwd, bwd)


def _linalg_cases() -> list[tuple[str, Callable[..., torch.Tensor], list[tuple[int, ...]], int]]:
    """(name, fn, shapes of x and the other operands, MACs by hand)."""
    return [
        ("inner", torch.inner, [(3, 5), (4, 5)], 3 * 4 * 5),
        ("inner", torch.inner, [(2, 3, 5), (5,)], 2 * 3 * 5),
        ("tensordot", lambda x, y: torch.tensordot(x, y, dims=2), [(2, 3, 4), (3, 4, 5)], 120),
        (
            "tensordot",
            lambda x, y: torch.tensordot(x, y, dims=([0, 2], [1, 0])),
            [(4, 3, 2), (2, 4, 5)],
            3 * 5 * 4 * 2,
        ),
        ("tensordot", lambda x, y: torch.tensordot(x, y, dims=0), [(2, 3), (4,)], 24),  # K = 1
        ("linalg_matmul", torch.linalg.matmul, [(2, 3, 5), (5, 4)], 2 * 3 * 4 * 5),
        # (3x5)(5x4)(4x2): (AB)C 60 + 24, A(BC) 40 + 30 = 70, the order torch runs
        ("linalg_multi_dot", lambda *t: torch.linalg.multi_dot(t), [(3, 5), (5, 4), (4, 2)], 70),
        # a row vector first: (vA)B = 20 + 8 = 28; v(AB) = 40 + 10
        ("linalg_multi_dot", lambda *t: torch.linalg.multi_dot(t), [(5,), (5, 4), (4, 2)], 28),
        # four, a column vector last: dims 6 2 7 3 1; best A(B(Cv)) = 21 + 14 + 12 = 47
        (
            "linalg_multi_dot",
            lambda *t: torch.linalg.multi_dot(t),
            [(6, 2), (2, 7), (7, 3), (3,)],
            47,
        ),
    ]


@pytest.mark.parametrize(("kind", "fn", "shapes", "macs"), _linalg_cases())
def test_products_match_flop_counter_mode(
    kind: str, fn: Callable[..., torch.Tensor], shapes: list[tuple[int, ...]], macs: int
) -> None:
    """Each was listed uncounted; FlopCounterMode counts 2 FLOPs per MAC forward, 4 back."""
    torch.manual_seed(0)
    model = Fn(fn, *(torch.randn(s) for s in shapes[1:]))
    x = torch.randn(shapes[0])
    c = _one(model, x)
    assert c["macs"] == macs
    assert (c["flops"], c["flops_backward"]) == _fcm(model, x)
    assert c["bitops"] == macs * 32 * 32


def test_dot_vdot_mv_are_counted_by_hand() -> None:
    """u . v of K = 5: 5 MACs; A (3, 5) v: 15 MACs; fwd 2 MACs, bwd 4 MACs, as a matmul of
    the same shapes (FlopCounterMode counts these three as 0)."""
    u, v, a = torch.randn(5), torch.randn(5), torch.randn(3, 5)
    for fn, x, other, macs in [
        (torch.dot, u, v, 5),
        (torch.vdot, u, v, 5),
        (lambda x, m: torch.mv(m, x), u, a, 15),
        (lambda x, m: m.mv(x), u, a, 15),
    ]:
        model = Fn(fn, other)
        assert _fcm(model, x) == (0, 0)
        c = _one(model, x)
        assert (c["macs"], c["flops"], c["flops_backward"]) == (macs, 2 * macs, 4 * macs)
        assert c["bitops"] == macs * 32 * 32


@pytest.mark.parametrize("c_shape", [(3,), (1,)])
def test_addmv_and_addr_by_hand(c_shape: tuple[int, ...]) -> None:
    """addmv: C + A (3, 5) v: 15 MACs, fwd 30 + N = 33, bwd 60 + N - numel(C) (dy summed to
    C's broadcast shape). addr: C + u (x) v, u 3 and v 4: N = 12 multiplies and 12 adds, no
    MACs; bwd as outer's 4 N - 3 - 4, + N - numel(C). FlopCounterMode counts both as 0."""
    c = torch.randn(c_shape)
    model = Fn(lambda v, m, c: torch.addmv(c, m, v), torch.randn(3, 5), c)
    x = torch.randn(5)
    assert _fcm(model, x) == (0, 0)
    got = _one(model, x)
    assert (got["macs"], got["flops"], got["flops_backward"]) == (15, 33, 60 + 3 - c.numel())
    model = Fn(lambda u, v, c: torch.addr(c[:, None], u, v), torch.randn(4), c)
    gm = trace(model.eval(), torch.randn(3))
    assert compute_cost(gm).uncounted == ()
    (got,) = [info(n).cost for n in gm.graph.nodes if info(n).op_kind == "addr"]
    assert (got["macs"], got["flops"], got["flops_backward"]) == (0, 24, 41 + 12 - c.numel())


def test_addbmm_by_hand_and_its_backward_against_flop_counter_mode() -> None:
    """C (3, 4) + the sum over b = 2 of A_b (3, 5) B_b (5, 4): each output sums b K = 10
    products, MACs = 12 * 10 = 120; fwd 240 + 12 adding C (FlopCounterMode counts addbmm's
    forward as 0 and its backward's two bmm, 4 MACs = 480)."""
    model = Fn(lambda x, b, c: torch.addbmm(c, x, b), torch.randn(2, 5, 4), torch.randn(3, 4))
    x = torch.randn(2, 3, 5)
    assert _fcm(model, x) == (0, 480)
    c = _one(model, x)
    assert (c["macs"], c["flops"], c["flops_backward"]) == (120, 252, 480)


@pytest.mark.parametrize(
    ("theta", "size"), [((2, 2, 3), [2, 3, 4, 5]), ((1, 3, 4), [1, 2, 3, 4, 5])]
)
def test_affine_grid_is_its_base_grid_times_theta(theta: tuple[int, ...], size: list[int]) -> None:
    """F.affine_grid (listed uncounted): each output coordinate a K-term dot product of the base
    grid with theta, MACs = N K; the backward (d theta only: the base grid is no input) is the
    bmm FlopCounterMode counts, 2 MACs; its forward it counts as 0, so 2 MACs by hand."""
    x = torch.randn(theta)
    model = Fn(lambda t: torch.nn.functional.affine_grid(t, size, align_corners=False))
    c = _one(model, x)
    macs = math.prod(size[:1] + size[2:]) * (len(size) - 2) * theta[-1]
    assert _fcm(model, x) == (0, 2 * macs)
    assert (c["macs"], c["flops"], c["flops_backward"]) == (macs, 2 * macs, 2 * macs)
    assert c["bitops"] == macs * 32 * 32


@pytest.mark.parametrize("kind", ["cov", "corrcoef"])
def test_cov_and_corrcoef_by_hand_their_macs_against_flop_counter_mode(kind: str) -> None:
    """x (3, 7): V = 3 variables of O = 7; X Xc^T: 63 MACs, FlopCounterMode's forward and
    backward (both listed uncounted before). Around it: means and centring 2 V O = 42, the
    divide V^2 = 9; back 9 + 2 V O + V = 54. corrcoef: + V + 4 V^2 = 39, back + 3 V^2 + 2 V
    = 33."""
    fn = torch.cov if kind == "cov" else torch.corrcoef
    model, x = Fn(fn), torch.randn(3, 7)
    c = _one(model, x)
    assert _fcm(model, x) == (2 * 63, 4 * 63)
    extra = (39, 33) if kind == "corrcoef" else (0, 0)
    got = (c["macs"], c["flops"], c["flops_backward"])
    assert got == (63, 126 + 42 + 9 + extra[0], 252 + 54 + extra[1])
    assert c["bitops"] == 63 * 32 * 32
    gm = trace(Fn(lambda t: torch.cov(t, fweights=torch.ones(7, dtype=torch.long))).eval(), x)
    assert "counted without fweights" in compute_cost(gm).uncounted[0].reason


@pytest.mark.parametrize(
    ("a", "b", "macs", "counted"),
    [
        ((5,), (5,), 5, False),  # a dot product: torch runs dot
        ((3, 5), (5,), 15, False),  # mv
        ((2, 3, 5), (5,), 30, False),  # batched mv
        ((5,), (2, 5, 4), 40, False),  # a row vector times each matrix (mv of the transpose)
        ((5,), (5, 4), 20, True),
        ((2, 1, 3, 5), (1, 4, 5, 6), 2 * 4 * 3 * 6 * 5, True),  # both broadcast
        ((3, 5), (2, 5, 4), 2 * 3 * 4 * 5, True),
    ],
)
def test_matmul_of_every_rank(
    a: tuple[int, ...], b: tuple[int, ...], macs: int, counted: bool
) -> None:
    """torch.matmul / @ over 1-d to 4-d operands: MACs = output elements x the contracted
    length. FlopCounterMode agrees where torch runs mm or bmm; where it runs dot or mv it
    counts 0 (checked), so those are by hand."""
    model, x = Fn(lambda s, t: s @ t, torch.randn(b)), torch.randn(a)
    c = _one(model, x)
    assert (c["macs"], c["flops"], c["flops_backward"]) == (macs, 2 * macs, 4 * macs)
    assert _fcm(model, x) == ((2 * macs, 4 * macs) if counted else (0, 0))
