"""Fixed point against an integer grid enumerated here, for every width 2..16 and frac_width 0..width."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from quantsearch.errors import ConfigError
from quantsearch.formats import FixedPoint, make_format

# Run through the contract of every format (tests/formats/test_contract.py).
EXAMPLES = [
    FixedPoint(8, 4),
    FixedPoint(4, 2, signed=False),
    FixedPoint(6, 3, rounding="floor"),
    FixedPoint(5, 1, rounding="stochastic"),
    FixedPoint(12, 11),
]


def grid(fmt: FixedPoint) -> list[float]:
    """Every value of the format: k / 2^frac_width for the integers k that fit, by hand."""
    lo, hi = (
        (-(2 ** (fmt.width - 1)), 2 ** (fmt.width - 1) - 1) if fmt.signed else (0, 2**fmt.width - 1)
    )
    return [k / 2**fmt.frac_width for k in range(lo, hi + 1)]


def _cases(width: int, frac: int, signed: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inputs and the expected integers, enumerated by hand (no torch.round).

    For every grid integer n and offsets 0, 1/4, 1/2, 3/4 of a step, plus values far outside:
    nearest-even rounding gives n, n, (n if n is even else n + 1), n + 1, then saturation.
    Returns (x, expected_nearest, expected_floor) with x in float64 (exact for width <= 16).
    """
    lo, hi = (-(2 ** (width - 1)), 2 ** (width - 1) - 1) if signed else (0, 2**width - 1)
    n = torch.arange(lo - 3, hi + 4, dtype=torch.float64)  # three past each end: saturation
    offsets = torch.tensor([0.0, 0.25, 0.5, 0.75], dtype=torch.float64)
    v = (n[:, None] + offsets[None, :]).reshape(-1)
    near = (n[:, None] + torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)).clone()
    near[:, 2] = torch.where(n % 2 == 0, n, n + 1)  # ties go to the even integer
    near = near.reshape(-1).clamp(lo, hi)
    floor = n[:, None].expand(-1, 4).reshape(-1).clamp(lo, hi)
    extreme = torch.tensor([lo - 1000.5, hi + 1000.5, -1e9, 1e9], dtype=torch.float64)
    v = torch.cat([v, extreme])
    near = torch.cat([near, torch.tensor([lo, hi, lo, hi], dtype=torch.float64)])
    floor = torch.cat([floor, torch.tensor([lo, hi, lo, hi], dtype=torch.float64)])
    return v / 2.0**frac, near, floor


@pytest.mark.parametrize("signed", [True, False])
def test_bit_exact_on_the_enumerated_grid_for_every_width_and_frac_width(signed: bool) -> None:
    checked = 0
    for width in range(2, 17):
        for frac in range(width + 1):
            x, near, floor = _cases(width, frac, signed)
            for rounding, expected in (("nearest", near), ("floor", floor)):
                q = FixedPoint(width, frac, signed, rounding).quantize(x.float())
                got = q.double() * 2.0**frac
                assert torch.equal(got, expected), (width, frac, signed, rounding)
            checked += x.numel()
    assert checked > 1_000_000


def test_float64_inputs_stay_float64_and_exact() -> None:
    x, near, _ = _cases(16, 7, True)
    q = FixedPoint(16, 7).quantize(x)
    assert q.dtype == torch.float64 and torch.equal(q * 2.0**7, near)


def test_range_and_step_properties() -> None:
    s, u = FixedPoint(8, 4), FixedPoint(8, 4, signed=False)
    assert (s.min_int, s.max_int, s.step, s.bits_per_element) == (-128, 127, 1 / 16, 8)
    assert (u.min_int, u.max_int) == (0, 255)
    assert u.quantize(torch.tensor([-3.0])).item() == 0.0  # unsigned saturates at zero


def test_straight_through_gradient_is_clipped_at_saturation() -> None:
    q = FixedPoint(4, 2)  # [-2, 1.75]
    x = torch.tensor([-3.0, -2.0, -0.3, 0.0, 0.6, 1.75, 1.9, 5.0], requires_grad=True)
    y = q.quantize(x)
    y.sum().backward()
    assert x.grad is not None
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]
    assert torch.equal(y.detach(), q.quantize(x.detach()))  # the autograd path is exact too


def test_stochastic_rounding_is_seeded_unbiased_and_on_the_grid() -> None:
    q = FixedPoint(8, 2, rounding="stochastic")
    x = torch.full((20000,), 0.3)  # between 0.25 and 0.5, 20% of the way
    a = q.quantize(x, generator=torch.Generator().manual_seed(1))
    b = q.quantize(x, generator=torch.Generator().manual_seed(1))
    c = q.quantize(x, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) == {0.25, 0.5}
    assert abs(a.mean().item() - 0.3) < 0.005
    on_grid = q.quantize(
        torch.tensor([0.25, -1.0, 1.5]), generator=torch.Generator().manual_seed(0)
    )
    assert on_grid.tolist() == [0.25, -1.0, 1.5]  # grid points never move


def test_readable_repr_and_str() -> None:
    assert str(FixedPoint(8, 4)) == "fixed(8,4)"
    assert str(FixedPoint(8, 4, signed=False, rounding="floor")) == "ufixed(8,4,floor)"
    assert (
        repr(FixedPoint(8, 4))
        == "FixedPoint(width=8, frac_width=4, signed=True, rounding='nearest')"
    )


def test_integer_alias_and_to_dict() -> None:
    fmt = make_format("integer", {"width": 6, "frac_width": 2})
    assert fmt == FixedPoint(6, 2)
    assert fmt.to_dict() == {
        "format": "fixed",
        "width": 6,
        "frac_width": 2,
        "signed": True,
        "rounding": "nearest",
    }


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"width": 8, "frac_width": 9}, r"^quantize\.by_type\.linear\.weight\.frac_width: got 9, allowed: an integer in \[0, width\] \(width = 8\)$"),
        ({"width": 8, "frac_width": -1}, r"\.frac_width: got -1, allowed: an integer in \[0, width\] \(width = 8\)$"),
        ({"width": 1, "frac_width": 0}, r"\.width: got 1, allowed: an integer in \[2, 32\] \(signed fixed point\)$"),
        ({"width": 33, "frac_width": 0}, r"\.width: got 33, allowed: an integer in \[2, 32\]"),
        ({"width": 8, "frac_width": 4, "rounding": "up"}, r"\.rounding: got 'up', allowed: one of \['nearest', 'floor', 'stochastic'\]$"),
        ({"width": "8", "frac_width": 4}, r"^quantize\.by_type\.linear\.weight\.width: got '8', allowed: an integer$"),
        ({"width": True, "frac_width": 4}, r"\.width: got True, allowed: an integer$"),
        ({"width": 8, "frac_width": 4, "signed": 1}, r"\.signed: got 1, allowed: true or false$"),
        ({"width": 8}, r"^quantize\.by_type\.linear\.weight\.frac_width: got no value, allowed: an integer or 'auto' \(format 'fixed' requires it\)$"),
        ({"width": 8, "frac_width": 4, "widht": 8}, r"quantize\.by_type\.linear\.weight\.widht: got an unknown key, allowed: the keys of quantize\.by_type\.linear\.weight: \['format', 'frac_width', 'rounding', 'signed', 'width'\]"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_key_the_rule_and_the_value(fields: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_format("fixed", fields, "quantize.by_type.linear.weight")


def test_unsigned_width_one_is_allowed() -> None:
    assert FixedPoint(1, 0, signed=False).quantize(torch.tensor([0.4, 0.6, 7.0])).tolist() == [
        0.0,
        1.0,
        1.0,
    ]


def test_direct_construction_errors_name_the_format() -> None:
    with pytest.raises(
        ConfigError, match=r"^fixed: frac_width: got 9, allowed: an integer in \[0, width\]"
    ):
        FixedPoint(8, 9)


@pytest.mark.parametrize(
    ("width", "signed", "absmax", "frac"),
    [(8, True, 0.99, 7), (8, True, 1.0, 6), (8, True, 127 / 64, 6), (8, True, 1.99, 5), (8, True, 0.0, 8),
     (8, True, 1e6, 0), (8, False, 1.0, 7), (8, False, 255 / 256, 8), (4, True, 3.5, 1)],
)  # fmt: skip
def test_auto_frac_width_is_the_finest_that_covers_the_range(
    width: int, signed: bool, absmax: float, frac: int
) -> None:
    assert FixedPoint.frac_width_for(width, signed, absmax) == frac
    fmt = FixedPoint(width, frac, signed)
    if 0 < absmax < 1e6:
        assert fmt.max_int * fmt.step >= absmax  # covers the range ...
        if frac < width:  # ... and one more fractional bit would not
            assert fmt.max_int * fmt.step / 2 < absmax


# --- half precision: every finite float16 / bfloat16 value, every format, against numpy --------


def _bf16_round(a: np.ndarray) -> np.ndarray:
    """float64 values (exact in float32) rounded to bfloat16, nearest-even, by bit arithmetic."""
    bits = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    lsb = (bits >> 16) & 1
    rounded = ((bits + 0x7FFF + lsb) >> 16) << 16
    return rounded.astype(np.uint32).view(np.float32).astype(np.float64)


def _half_round(a: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    if dtype == torch.float16:
        return a.astype(np.float16).astype(np.float64)
    return _bf16_round(a)


def _largest_at_most(v: float, dtype: torch.dtype) -> float:
    """The largest value of the half dtype <= v (v >= 0), found by scanning its finite values."""
    values = _all_finite(dtype)
    return float(values[values <= v].max())


def _all_finite(dtype: torch.dtype) -> np.ndarray:
    """Every finite value of a 16-bit float dtype, in float64, from its bit patterns."""
    patterns = torch.arange(0, 1 << 16, dtype=torch.int32).to(torch.int16)
    values: np.ndarray = patterns.view(dtype).double().numpy()
    finite: np.ndarray = values[np.isfinite(values)]
    return finite


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("signed", [True, False])
def test_half_precision_inputs_match_a_float64_reference_for_every_format(
    dtype: torch.dtype, signed: bool
) -> None:
    """Every finite value of the dtype through every fixed(width, frac_width) up to width 32.

    Reference (numpy, float64): k = clip(round_half_even(x * 2^f), min_int, max_int), q = k / 2^f,
    then q clipped to the dtype values inside the format's range and rounded to the dtype. The
    result must equal it, never raise, and never leave [min_int, max_int] / 2^f.
    """
    x64 = _all_finite(dtype)
    x = torch.from_numpy(x64).to(dtype)
    assert torch.equal(x.double(), torch.from_numpy(x64))  # every value exact in the dtype
    for width in range(1 if not signed else 2, 33):
        lo_int, hi_int = (
            (-(2 ** (width - 1)), 2 ** (width - 1) - 1) if signed else (0, 2**width - 1)
        )
        for frac in range(width + 1):
            scale = 2.0**frac
            q64 = np.clip(np.round(x64 * scale), lo_int, hi_int) / scale
            hi = _largest_at_most(hi_int / scale, dtype)
            lo = -_largest_at_most(-lo_int / scale, dtype)
            expected = _half_round(np.clip(q64, lo, hi), dtype)
            got = FixedPoint(width, frac, signed).quantize(x)
            assert got.dtype == dtype
            g = got.double().numpy()
            assert (g <= hi_int / scale).all() and (g >= lo_int / scale).all(), (width, frac)
            bad = np.flatnonzero(g != expected)
            assert bad.size == 0, (width, frac, x64[bad[:3]], g[bad[:3]], expected[bad[:3]])


# --- the no-autograd path (evaluation) and the autograd path give the same bits ---------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_inference_path_equals_the_autograd_path_and_numpy(dtype: torch.dtype) -> None:
    """``quantize`` on a tensor without gradients takes round / in-place clamp / in-place
    divide with bounds remembered per format and dtype; with gradients it takes the
    straight-through path. Both must give the same bits, for every dtype, each format met
    first in one dtype and then in another (the remembered bounds are per dtype: fixed(13,0)'s
    4095 is 4080 in bfloat16), and equal numpy's float64 integer-grid referee where the
    dtype holds every grid value."""
    g = torch.Generator().manual_seed(11)
    x = (torch.randn(4096, generator=g, dtype=torch.float64) * 3000).to(dtype)
    x[:4] = torch.tensor([0.5, 1.5, -2.5, 1e30]).to(dtype)  # ties to even, saturation
    for fmt in (FixedPoint(13, 0), FixedPoint(16, 8), FixedPoint(8, 6, signed=False)):
        for other in (torch.float32, torch.bfloat16):  # the format met in another dtype first
            fmt.quantize(x.to(other))
        with torch.inference_mode():
            fast = fmt.quantize(x)
        slow = fmt.quantize(x.clone().requires_grad_(True))
        assert slow.requires_grad and fast.dtype == dtype
        assert torch.equal(fast, slow.detach()), fmt
        if dtype in (torch.float32, torch.float64):
            a = x.double().numpy()
            scale = 2.0**fmt.frac_width
            ref = np.clip(np.round(a * scale), fmt.min_int, fmt.max_int) / scale
            assert np.array_equal(fast.double().numpy(), ref), fmt
