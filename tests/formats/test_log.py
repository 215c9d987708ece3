"""The log format against a hand-worked table."""

from __future__ import annotations

import math

import pytest
import torch

from quantsearch.errors import ConfigError
from quantsearch.formats import LogFormat, make_format

# Run through the contract of every format (tests/formats/test_contract.py).
EXAMPLES = [LogFormat(2), LogFormat(3, exponent_bias=2), LogFormat(4)]


def grid(fmt: LogFormat) -> list[float]:
    """Zero and +-2^(code - bias) for every code 1 .. 2^E - 1, by hand."""
    bias = fmt.bias
    powers = [2.0 ** (c - bias) for c in range(1, 2**fmt.exponent_width)]
    return sorted({0.0, *powers, *(-p for p in powers)})


def test_e2_hand_table() -> None:
    # E=2, bias 1: codes 1..3 are 2^0, 2^1, 2^2; code 0 is zero. Boundaries at 2^(k+1/2).
    q = LogFormat(2)
    table = {
        0.0: 0.0, 0.5: 0.0, 0.7: 0.0, 0.71: 1.0, 1.0: 1.0, 1.41: 1.0, 1.42: 2.0, 2.0: 2.0,
        2.82: 2.0, 2.83: 4.0, 4.0: 4.0, 10.0: 4.0, 1e30: 4.0,
    }  # fmt: skip
    x = torch.tensor(list(table))
    assert q.quantize(x).tolist() == list(table.values())
    assert q.quantize(-x).tolist() == [-v for v in table.values()]
    assert q.bits_per_element == 3 and (q.min_exponent, q.max_exponent) == (0, 2)


def test_boundary_is_exactly_the_geometric_midpoint() -> None:
    below = torch.tensor(math.sqrt(2), dtype=torch.float32)
    while below.double().item() >= math.sqrt(2):  # the largest float32 below sqrt(2)
        below = torch.nextafter(below, torch.tensor(0.0))
    above = torch.nextafter(below, torch.tensor(2.0))
    q = LogFormat(3)
    assert q.quantize(below.reshape(1)).item() == 1.0
    assert q.quantize(above.reshape(1)).item() == 2.0


def test_bias_moves_the_range_to_small_magnitudes() -> None:
    q = LogFormat(3, exponent_bias=8)  # exponents -7 .. -1
    x = torch.tensor([0.3, 0.01, 0.0001, 5.0])
    assert q.quantize(x).tolist() == [0.25, 2.0**-7, 0.0, 0.5]


def test_gradient_is_clipped_straight_through() -> None:
    x = torch.tensor([0.3, 3.0, 9.0], requires_grad=True)
    y = LogFormat(2).quantize(x)
    y.sum().backward()
    assert x.grad is not None and x.grad.tolist() == [1.0, 1.0, 0.0]
    assert y.tolist() == [0.0, 4.0, 4.0]


def test_str_and_validation() -> None:
    assert str(LogFormat(4)) == "log(e4,b7)"
    with pytest.raises(
        ConfigError, match=r"^k\.exponent_width: got 9, allowed: an integer in \[1, 8\]$"
    ):
        make_format("log", {"exponent_width": 9}, "k")
