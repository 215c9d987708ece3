"""Block floating point against hand-worked blocks."""

from __future__ import annotations

import pytest
import torch

from quantsearch.errors import ConfigError
from quantsearch.formats import BlockFP, make_format

# Run through the contract of every format (tests/formats/test_contract.py); a block format
# has no per-element grid, so no grid() here.
EXAMPLES = [
    BlockFP(4, exponent_width=4, block_size=4),
    BlockFP(6, exponent_width=5, block_size=8),
    BlockFP(3, exponent_width=3, block_size=2, block_dim=0),
    BlockFP(4),  # an 8-bit exponent: past float32's range
]


def test_hand_worked_blocks() -> None:
    q = BlockFP(mantissa_width=4, block_size=4)  # 4-bit mantissas: integers -8..7
    x = torch.tensor([
        1.0, 0.3, -0.55, 0.05,     # max 1.0 -> e=0, step 2^(0-2)=0.25 -> 4, 1, -2, 0
        3.9, 1.1, 0.125, -2.0,     # max 3.9 -> e=1, step 0.5 -> 7.8 saturates to 7
        0.0, 0.0, 0.0, 0.0,        # an all-zero block stays zero
    ])  # fmt: skip
    expected = [1.0, 0.25, -0.5, 0.0, 3.5, 1.0, 0.0, -2.0, 0.0, 0.0, 0.0, 0.0]
    assert q.quantize(x).tolist() == expected
    assert q.bits_per_element == 4 + 8 / 4


def test_short_last_block_and_block_dim() -> None:
    q = BlockFP(mantissa_width=4, block_size=4)
    x = torch.tensor([[1.0, 0.3, -0.55, 0.05, 8.0, 3.0]])  # second block: 8.0, 3.0 (e=3, step 2)
    assert q.quantize(x).tolist() == [[1.0, 0.25, -0.5, 0.0, 8.0, 4.0]]
    cols = BlockFP(mantissa_width=4, block_size=2, block_dim=0)
    y = torch.tensor([[1.0, 8.0], [0.3, 3.0]])  # blocks run down the columns
    assert cols.quantize(y).tolist() == [[1.0, 8.0], [0.25, 4.0]]


def test_shared_exponent_is_clamped_to_its_width() -> None:
    q = BlockFP(mantissa_width=4, exponent_width=2, block_size=2)  # bias 1: exponents -1..2
    x = torch.tensor([100.0, 1.0, 0.01, 0.0])  # first: step 2^(2-2)=1 saturates at 7
    assert q.quantize(x).tolist() == [7.0, 1.0, 0.0, 0.0]  # second: step 2^(-1-2) -> 0.01 -> 0


def test_gradient_and_shape() -> None:
    x = torch.randn(3, 5, 7, requires_grad=True)
    y = BlockFP(mantissa_width=6, block_size=4, block_dim=1).quantize(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and set(x.grad.unique().tolist()) <= {0.0, 1.0}


def test_validation_and_out_of_range_dim() -> None:
    with pytest.raises(
        ConfigError, match=r"^k\.mantissa_width: got 1, allowed: an integer in \[2, 24\]$"
    ):
        make_format("block_fp", {"mantissa_width": 1}, "k")
    with pytest.raises(
        ConfigError, match=r"^k\.block_size: got 0, allowed: an integer in \[1, 65536\]$"
    ):
        make_format("block_fp", {"mantissa_width": 4, "block_size": 0}, "k")
    with pytest.raises(ConfigError, match=r"block_dim 2 is out of range for a 2-d tensor"):
        BlockFP(4, block_dim=2).quantize(torch.ones(2, 2))
    assert str(BlockFP(8)) == "block_fp(m8,e8,b127,16@-1)"
