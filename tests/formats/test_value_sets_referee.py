"""Every quantized value is representable, and the nearest one, by each format's definition.

The referee enumerates each small format's value set by hand here (not from ``quantize``) and
picks the nearest value with the documented tie rule: fixed point rounds the integer
``x * 2^frac_width`` half to even and saturates; minifloat ties go to the even mantissa code
(``mantissa_width = 0``: the larger magnitude), save that a tie between 0 and the smallest
normal (no subnormals, or ``M = 0``) goes to 0, which the docstring did not say; log rounds ``log2|x|`` to the nearest integer
(no float is exactly on a boundary ``2^(k + 1/2)``), flushing exponents below the smallest to
0; block_fp's block shares the exponent of its largest element (``[2^e, 2^(e+1))`` for a
positive one, ``(2^e, 2^(e+1)]`` for a negative one, which ``-2^(M-1)`` steps reach) and each
element is a ``mantissa_width``-bit integer times ``2^(e - M + 2)``, rounded half to even.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from quantsearch.formats import BlockFP, FixedPoint, LogFormat, Minifloat


def _inputs(top: float, seed: int) -> torch.Tensor:
    """Values over the whole range and beyond, both signs, plus every midpoint of ``grid``."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([(torch.rand(4000, generator=g) * 2 - 1) * 1.3 * top, torch.zeros(1)])


def _with_midpoints(x: torch.Tensor, grid: list[float]) -> torch.Tensor:
    mids = [(a + b) / 2 for a, b in itertools.pairwise(grid)]
    return torch.cat([x, torch.tensor(grid + mids, dtype=torch.float32)])


@pytest.mark.parametrize(
    "fmt",
    [
        FixedPoint(1, 0, signed=False),
        FixedPoint(1, 1, signed=False),
        FixedPoint(2, 0),
        FixedPoint(2, 1),
        FixedPoint(2, 2),
        FixedPoint(2, 2, signed=False),
        FixedPoint(3, 3),
        FixedPoint(2, 0, rounding="floor"),
        FixedPoint(1, 1, signed=False, rounding="floor"),
    ],
    ids=str,
)
def test_fixed_point_edge_widths_are_the_hand_integer_grid(fmt: FixedPoint) -> None:
    w, f = fmt.width, fmt.frac_width
    ks = range(-(2 ** (w - 1)), 2 ** (w - 1)) if fmt.signed else range(2**w)
    grid = [k / 2**f for k in ks]
    x = _with_midpoints(_inputs(max(map(abs, grid)) + 1, 0), grid)
    got = fmt.quantize(x).tolist()
    for v, q in zip(x.tolist(), got, strict=True):
        s = v * 2**f
        k = math.floor(s) if fmt.rounding == "floor" else round(s)  # Python: half to even
        want = min(max(k, ks[0]), ks[-1]) / 2**f
        assert q == want, (fmt, v, q, want)


def test_fixed_point_stochastic_rounding_picks_a_neighbour() -> None:
    fmt = FixedPoint(3, 1, rounding="stochastic")  # steps of 0.5 in [-2, 1.5]
    x = torch.tensor([0.2, -0.7, 1.1, -1.9]).repeat(4000)
    q = fmt.quantize(x, generator=torch.Generator().manual_seed(0))
    lo, hi = torch.floor(x * 2) / 2, torch.ceil(x * 2) / 2
    assert ((q == lo) | (q == hi)).all()
    means = q.reshape(4000, 4).mean(0)  # unbiased: each value in expectation
    assert torch.allclose(means, x[:4], atol=0.02), means


def _minifloat_values(fmt: Minifloat) -> list[tuple[float, int]]:
    """(value, mantissa code) of every non-negative value, decoded from the definition."""
    e, m, bias = fmt.exponent_width, fmt.mantissa_width, fmt.bias
    out = []
    for ce, cm in itertools.product(range(2**e), range(2**m)):
        if ce == 0:
            if fmt.subnormals or cm == 0:
                out.append((2.0 ** (1 - bias) * cm / 2**m, cm))
        else:
            out.append((2.0 ** (ce - bias) * (1 + cm / 2**m), cm))
    return sorted(out)


@pytest.mark.parametrize(
    "fmt",
    [
        Minifloat(1, 0),
        Minifloat(1, 1),
        Minifloat(1, 2, subnormals=False),
        Minifloat(2, 0),
        Minifloat(2, 0, exponent_bias=-1),
        Minifloat(3, 1, exponent_bias=5),
        Minifloat(2, 2, subnormals=False),
    ],
    ids=str,
)
def test_minifloat_is_the_nearest_decoded_value_ties_to_even(fmt: Minifloat) -> None:
    values = _minifloat_values(fmt)
    grid = [v for v, _ in values]
    x = _with_midpoints(_inputs(grid[-1], 1), grid)
    got = fmt.quantize(x).tolist()
    for v, q in zip(x.tolist(), got, strict=True):
        a = abs(v)
        best = min(abs(a - g) for g in grid)
        near = [(g, c) for g, c in values if abs(a - g) == best]
        if len(near) == 2:  # a tie: even mantissa code; with M = 0 the larger magnitude
            (g0, c0), (g1, c1) = near
            if g0 == 0:  # 0 against the smallest normal (no subnormals, or M = 0): to 0
                near = [(g0, c0)]
            elif fmt.mantissa_width == 0 or c0 % 2 == c1 % 2:
                near = [(g1, c1)]
            else:
                near = [(g0, c0)] if c0 % 2 == 0 else [(g1, c1)]
        want = math.copysign(near[0][0], v) if near[0][0] else 0.0
        assert abs(q) == abs(want) and (q == 0 or math.copysign(1, q) == math.copysign(1, v)), (
            fmt,
            v,
            q,
            want,
        )


@pytest.mark.parametrize(
    "fmt",
    [LogFormat(1), LogFormat(2), LogFormat(2, exponent_bias=-2), LogFormat(3, exponent_bias=6)],
    ids=str,
)
def test_log_is_the_nearest_power_in_the_log_domain(fmt: LogFormat) -> None:
    emin, emax = 1 - fmt.bias, 2**fmt.exponent_width - 1 - fmt.bias
    grid = sorted({0.0, *(s * 2.0**k for k in range(emin, emax + 1) for s in (1, -1))})
    x = _with_midpoints(_inputs(2.0**emax, 2), grid)
    x = torch.cat([x, x * 2.0 ** (emin - 3)])  # the flushed range below the smallest
    got = fmt.quantize(x).tolist()
    for v, q in zip(x.tolist(), got, strict=True):
        assert q in grid, (fmt, v, q)
        if v == 0:
            assert q == 0
            continue
        k = round(math.log2(abs(v)))  # never a tie: 2^(k + 1/2) is irrational
        want = 0.0 if k < emin else math.copysign(2.0 ** min(k, emax), v)
        assert q == want, (fmt, v, q, want)


def _block_referee(fmt: BlockFP, block: list[float]) -> list[float]:
    m, bias = fmt.mantissa_width, fmt.bias
    emax = 2**fmt.exponent_width - 1 - bias
    needs = []
    for v in block:
        if v > 0:
            needs.append(math.floor(math.log2(v)))
        elif v < 0:
            needs.append(math.ceil(math.log2(-v)) - 1)
    e = min(max(max(needs, default=-bias), -bias), emax)
    step = 2.0 ** (e - m + 2)
    top = 2 ** (m - 1)
    # every value of this block: k * step for the m-bit integers k
    return [min(max(round(v / step), -top), top - 1) * step for v in block]


@pytest.mark.parametrize(
    ("fmt", "shape"),
    [
        (BlockFP(2, exponent_width=3, block_size=3), (5, 7)),
        (BlockFP(3, exponent_width=2, exponent_bias=0, block_size=4, block_dim=0), (6, 5)),
        (BlockFP(4, exponent_width=4, block_size=2, block_dim=1), (3, 5, 4)),
        (BlockFP(5, block_size=16), (2, 3, 10)),
    ],
    ids=str,
)
def test_block_fp_blocks_are_on_their_shared_grid_and_nearest(
    fmt: BlockFP, shape: tuple[int, ...]
) -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(shape, generator=g) * 2.0 ** torch.randint(-6, 6, shape, generator=g)
    x = torch.where(torch.rand(shape, generator=g) < 0.1, torch.zeros(shape), x)
    x.view(-1)[:3] = torch.tensor([-2.0, 0.75, -0.375])  # values quantizing often produces
    q = fmt.quantize(x)
    xt, qt = x.movedim(fmt.block_dim, -1), q.movedim(fmt.block_dim, -1)
    for row_x, row_q in zip(
        xt.reshape(-1, xt.shape[-1]), qt.reshape(-1, qt.shape[-1]), strict=True
    ):
        for i in range(0, len(row_x), fmt.block_size):  # the last block shorter
            block = row_x[i : i + fmt.block_size].tolist()
            assert row_q[i : i + fmt.block_size].tolist() == _block_referee(fmt, block), block
