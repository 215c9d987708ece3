"""Fixed-point hardware types: what a quantsearch format is in ``ap_fixed`` terms, and the
widths that make an accumulator exact.

``fixed(w, f)`` (signed) is ``ap_fixed<w, w-f, AP_RND_CONV, AP_SAT>``: ``w - f`` integer bits,
sign included; ``AP_RND_CONV`` rounds half to even (``torch.round``) and ``AP_SAT`` saturates to
the format's min and max (quantsearch's clamp). ``ufixed(w, f)`` is ``ap_ufixed``; rounding
``floor`` is ``AP_TRN`` (truncation towards minus infinity). Stochastic rounding has no
hardware counterpart here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from quantsearch.errors import ConfigError
from quantsearch.formats import FixedPoint, NumberFormat

__all__ = ["HwType", "hw_type", "product_type", "sum_type"]

_AP_ROUNDING = {"nearest": "AP_RND_CONV", "floor": "AP_TRN"}
_QONNX_ROUNDING = {"nearest": "ROUND", "floor": "FLOOR"}


@dataclass(frozen=True)
class HwType:
    """A fixed-point type: ``width`` bits, ``frac`` of them after the binary point.

    ``rounding`` is ``None`` for a type that never rounds or saturates (an exact intermediate
    type, wide enough by construction); else ``nearest`` or ``floor``, with saturation.

    Example:
        >>> HwType(8, 4, True, "nearest").ap()
        'ap_fixed<8,4,AP_RND_CONV,AP_SAT>'
        >>> HwType(39, 16, True).ap(), HwType(4, 2, False, "floor").ap()
        ('ap_fixed<39,23>', 'ap_ufixed<4,2,AP_TRN,AP_SAT>')
    """

    width: int
    frac: int
    signed: bool = True
    rounding: str | None = None

    @property
    def int_bits(self) -> int:
        """Integer bits, sign included (``ap_fixed``'s second parameter)."""
        return self.width - self.frac

    @property
    def signed_int_bits(self) -> int:
        """Integer bits of the smallest signed type that holds every value of this one."""
        return self.int_bits + (0 if self.signed else 1)

    @property
    def lo(self) -> float:
        return -(2.0 ** (self.width - 1)) * 2.0**-self.frac if self.signed else 0.0

    @property
    def hi(self) -> float:
        bits = self.width - 1 if self.signed else self.width
        return (2.0**bits - 1) * 2.0**-self.frac

    def contains(self, other: HwType) -> bool:
        """Whether every value of ``other`` is a value of this type (so casting is exact)."""
        return self.frac >= other.frac and self.lo <= other.lo and self.hi >= other.hi

    def ap(self) -> str:
        """The Vivado/Vitis HLS type, as hls4ml's configuration takes it."""
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        if self.rounding is None:
            return f"{kind}<{self.width},{self.int_bits}>"
        return f"{kind}<{self.width},{self.int_bits},{_AP_ROUNDING[self.rounding]},AP_SAT>"

    def qonnx_rounding(self) -> str:
        return _QONNX_ROUNDING[self.rounding or "nearest"]

    def __str__(self) -> str:
        return self.ap()


def hw_type(fmt: NumberFormat, key: str) -> HwType:
    """The hardware type of a quantsearch format; only fixed point has one.

    Raises:
        ConfigError: ``key`` names the node and role, for formats other than deterministic
            fixed point.

    Example:
        >>> from quantsearch.formats import FixedPoint
        >>> str(hw_type(FixedPoint(4, 2, signed=False), "fc.data_in"))
        'ap_ufixed<4,2,AP_RND_CONV,AP_SAT>'
    """
    if not isinstance(fmt, FixedPoint):
        raise ConfigError(
            f"{key}: got {fmt}, allowed: fixed or ufixed (hardware export has no counterpart "
            f"for {fmt.name})"
        )
    if fmt.rounding not in _AP_ROUNDING:
        raise ConfigError(
            f"{key}: got {fmt}, allowed: rounding {sorted(_AP_ROUNDING)} (stochastic rounding has "
            "no exact hardware counterpart)"
        )
    return HwType(fmt.width, fmt.frac_width, fmt.signed, fmt.rounding)


def product_type(a: HwType, b: HwType) -> HwType:
    """The exact type of ``a * b`` (signed; ``ap_fixed``'s own product width).

    Example:
        >>> str(product_type(HwType(8, 4), HwType(8, 6)))
        'ap_fixed<16,6>'
    """
    frac = a.frac + b.frac
    return HwType(a.signed_int_bits + b.signed_int_bits + frac, frac)


def sum_type(terms: HwType, n: int, bias: HwType | None = None) -> HwType:
    """The exact type of a sum of ``n`` values of type ``terms`` plus one of ``bias``.

    Each doubling of the number of terms needs one more integer bit.

    Example:
        >>> str(sum_type(HwType(16, 6), 64, HwType(8, 4)))
        'ap_fixed<23,17>'
    """
    frac = max(terms.frac, bias.frac if bias is not None else 0)
    top = max(terms.signed_int_bits, bias.signed_int_bits if bias is not None else 0)
    count = n + (1 if bias is not None else 0)
    ints = top + math.ceil(math.log2(count)) if count > 1 else top
    return HwType(ints + frac, frac)
