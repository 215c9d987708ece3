"""Minifloat against torch's own float casts, a referee that shares no code with it.

IEEE-like dtypes torch implements in C++ are minifloats of this module's family where they hold
finite values: float16 is e5m10 and bfloat16 e8m7 (IEEE bias, subnormals), float8_e5m2 e5m2
and float8_e4m3fn e4m3. Every finite value each dtype encodes, every midpoint between two
neighbours (the ties, to even), points a quarter of the way between them and seeded random
inputs over the whole range are quantized by ``Minifloat(E, M)`` and cast by
``x.to(dtype).float()``: equal bit for bit, the sign of zero included. (The dtypes' top codes
are infinities or NaN, which a saturating minifloat spends on finite values instead: inputs stay
within each dtype's largest finite value, where no code differs.)
"""

from __future__ import annotations

import pytest
import torch

from quantsearch.formats import Minifloat

CASTS = [
    (torch.float16, 5, 10, torch.int16),
    (torch.bfloat16, 8, 7, torch.int16),
    (torch.float8_e5m2, 5, 2, torch.int8),
    (torch.float8_e4m3fn, 4, 3, torch.int8),
]


def _every_finite(dtype: torch.dtype, bits: torch.dtype) -> torch.Tensor:
    """Every finite value ``dtype`` encodes, ascending, as float64 (-0.0 dropped)."""
    n = 2 ** (torch.iinfo(bits).bits)
    codes = torch.arange(-(n // 2), n // 2, dtype=torch.int64).to(bits)
    values = codes.view(dtype).double()
    values = values[torch.isfinite(values)]
    return torch.unique(values)  # sorted; +0.0 and -0.0 are one value


def _same(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Equal values and equal signs (``-0.0`` is not ``0.0`` here)."""
    return torch.equal(got, want) and torch.equal(torch.signbit(got), torch.signbit(want))


@pytest.mark.parametrize(("dtype", "e", "m", "bits"), CASTS, ids=lambda c: str(c))
def test_every_value_tie_and_between_point_is_torchs_cast(
    dtype: torch.dtype, e: int, m: int, bits: torch.dtype
) -> None:
    values = _every_finite(dtype, bits)
    lo, hi = values[:-1], values[1:]
    points = torch.cat([values, (lo + hi) / 2, lo + (hi - lo) / 4, hi - (hi - lo) / 4])
    x = torch.cat([points, torch.tensor([-0.0])]).float()
    assert torch.equal(x.double(), torch.cat([points, torch.tensor([-0.0])]))  # exact in fp32
    assert _same(Minifloat(e, m).quantize(x), x.to(dtype).float())


@pytest.mark.parametrize(("dtype", "e", "m", "bits"), CASTS, ids=lambda c: str(c))
def test_random_inputs_over_the_range_are_torchs_cast(
    dtype: torch.dtype, e: int, m: int, bits: torch.dtype
) -> None:
    g = torch.Generator().manual_seed(0)
    top = torch.finfo(dtype).max
    low = torch.finfo(dtype).tiny / 2 ** (m + 2)  # below the smallest subnormal too
    exponent = torch.empty(100_000, dtype=torch.float64).uniform_(
        float(torch.log2(torch.tensor(low))), float(torch.log2(torch.tensor(top))), generator=g
    )
    sign = torch.where(torch.rand(100_000, generator=g) < 0.5, -1.0, 1.0).double()
    x = (sign * torch.exp2(exponent)).clamp(-top, top).float()
    assert _same(Minifloat(e, m).quantize(x), x.to(dtype).float())
