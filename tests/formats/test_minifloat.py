"""Minifloat against hand-worked tables and against a brute-force decode of every bit pattern."""

from __future__ import annotations

import itertools

import pytest
import torch

from quantsearch.errors import ConfigError
from quantsearch.formats import Minifloat, make_format

# Run through the contract of every format (tests/formats/test_contract.py).
EXAMPLES = [
    Minifloat(2, 1),
    Minifloat(4, 3),
    Minifloat(3, 2, subnormals=False),
    Minifloat(5, 2),  # past float16's range
    Minifloat(8, 3),  # past float32's range
]


def grid(fmt: Minifloat) -> list[float]:
    """Every value of the format, by decoding every bit pattern (see :func:`_decoded`)."""
    values, _ = _decoded(fmt.exponent_width, fmt.mantissa_width, fmt.bias, fmt.subnormals)
    return sorted({*values, *(-v for v in values)})


def test_e2m1_hand_table_with_subnormals() -> None:
    # E=2, M=1, bias 1: subnormal 0, 0.5; normal 1, 1.5, 2, 3, 4, 6 (max)
    q = Minifloat(2, 1)
    table = {
        0.0: 0.0, 0.2: 0.0, 0.25: 0.0, 0.3: 0.5, 0.5: 0.5, 0.75: 1.0, 1.25: 1.0, 1.3: 1.5,
        1.75: 2.0, 2.5: 2.0, 3.5: 4.0, 5.0: 4.0, 5.5: 6.0, 6.0: 6.0, 7.0: 6.0, 100.0: 6.0,
    }  # fmt: skip
    x = torch.tensor(list(table))
    assert q.quantize(x).tolist() == list(table.values())
    assert q.quantize(-x).tolist() == [-v for v in table.values()]
    assert (q.bits_per_element, q.max_value, q.min_exponent, q.max_exponent) == (4, 6.0, 0, 2)


def test_e2m1_hand_table_without_subnormals() -> None:
    # 0.5 is gone: below the smallest normal (1) only 0 and 1 are left
    q = Minifloat(2, 1, subnormals=False)
    table = {0.2: 0.0, 0.5: 0.0, 0.6: 1.0, 0.75: 1.0, 1.25: 1.0, 3.5: 4.0, 9.0: 6.0}
    assert q.quantize(torch.tensor(list(table))).tolist() == list(table.values())


def test_explicit_bias_shifts_the_range() -> None:
    q = Minifloat(2, 1, exponent_bias=3)  # everything scaled by 2^-2: max 1.5
    assert q.quantize(torch.tensor([0.3, 1.0, 9.0])).tolist() == [0.25, 1.0, 1.5]


def _decoded(e: int, m: int, bias: int, subnormals: bool) -> tuple[list[float], list[int]]:
    """Every finite value of the format (non-negative half) and its bit code, by decoding."""
    values, codes = [], []
    for code_e, code_m in itertools.product(range(2**e), range(2**m)):
        if code_e == 0:
            if not subnormals and code_m != 0:
                continue
            v = 2.0 ** (1 - bias) * code_m / 2**m
        else:
            v = 2.0 ** (code_e - bias) * (1 + code_m / 2**m)
        values.append(v)
        codes.append(code_e * 2**m + code_m)
    return values, codes


@pytest.mark.parametrize(
    ("e", "m", "bias", "subnormals"),
    [(2, 1, None, True), (3, 2, None, True), (4, 3, None, True), (3, 2, 5, True), (3, 2, None, False), (2, 0, None, True)],
)  # fmt: skip
def test_matches_nearest_decoded_value_with_ties_to_even_codes(
    e: int, m: int, bias: int | None, subnormals: bool
) -> None:
    q = Minifloat(e, m, bias, subnormals)
    values, codes = _decoded(e, m, q.bias, subnormals)
    grid = torch.tensor(values, dtype=torch.float64)
    code = torch.tensor(codes)
    # every value, every midpoint, quarter points and beyond the max
    pts = sorted(set(values))
    mids = [(a + b) / 2 for a, b in itertools.pairwise(pts)]
    quarters = [a + (b - a) / 4 for a, b in itertools.pairwise(pts)] + [
        b - (b - a) / 4 for a, b in itertools.pairwise(pts)
    ]
    x = torch.tensor(pts + mids + quarters + [max(pts) * 1.1, max(pts) * 100], dtype=torch.float64)
    dist = (x[:, None] - grid[None, :]).abs()
    best = dist.min(dim=1, keepdim=True).values
    tied = dist == best
    # Among equally near values prefer the even code (IEEE), and a tie between 0 and the
    # smallest normal (no subnormals) goes to 0. With no mantissa bits every code is a power of
    # two and ties go to the larger one (documented).
    parity = torch.where(grid == 0, -1e9, (code % 2).double() if m > 0 else -grid)
    score = torch.where(tied, parity[None, :] * 2 + grid[None, :] * 1e-9, torch.inf)
    expected = grid[score.argmin(dim=1)]
    got = q.quantize(x.float()).double()
    assert torch.equal(got, expected), (
        x[got != expected],
        got[got != expected],
        expected[got != expected],
    )
    assert torch.equal(q.quantize(-x.float()).double(), -expected)


def test_gradient_passes_inside_and_stops_beyond_the_max() -> None:
    x = torch.tensor([0.3, 2.6, 5.9, 7.0, -100.0], requires_grad=True)
    y = Minifloat(2, 1).quantize(x)
    y.sum().backward()
    assert x.grad is not None and x.grad.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]
    assert y.tolist() == [0.5, 3.0, 6.0, 6.0, -6.0]


def test_str_and_canonical_bias() -> None:
    assert str(Minifloat(4, 3)) == "minifloat(e4m3,b7)"
    assert str(Minifloat(4, 3, subnormals=False)) == "minifloat(e4m3,b7,nosub)"
    assert Minifloat(4, 3) == Minifloat(4, 3, 7)  # the default bias is stored explicitly


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"exponent_width": 0, "mantissa_width": 3}, r"^k\.exponent_width: got 0, allowed: an integer in \[1, 8\]$"),
        ({"exponent_width": 4, "mantissa_width": -1}, r"^k\.mantissa_width: got -1, allowed: an integer in \[0, 23\]$"),
        ({"exponent_width": 4}, r"^k\.mantissa_width: got no value, allowed: an integer \(format 'minifloat' requires it\)$"),
        ({"exponent_width": 4, "mantissa_width": 3, "width": 8}, r"k\.width: got an unknown key, allowed: the keys of k: \["),
    ],
)  # fmt: skip
def test_validation(fields: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_format("minifloat", fields, "k")
